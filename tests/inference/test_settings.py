"""Settings: read once from the environment, validated, each default defined once."""

import msgspec
import pytest

from inference.settings import Settings, SettingsError, available_cpus
from shared_schema.serving_folder import DEFAULT_SERVING_FOLDER


def test_defaults_from_empty_environment() -> None:
    """With no variables set, the documented defaults apply (workers: the available CPUs)."""
    settings = Settings.from_env({})
    assert settings.model_dir == DEFAULT_SERVING_FOLDER
    assert settings.port == 8000
    assert settings.ort_threads == 1
    assert settings.batch_enabled is True
    assert settings.workers >= 1
    assert settings.workers == available_cpus()
    assert settings.reload_token is None
    assert settings.log_level == "info"
    assert settings.prediction_log_dir is None  # the prediction log is off


def test_environment_reader_adds_no_defaults() -> None:
    """An empty environment gives exactly the Struct's own defaults: one home for each."""
    assert Settings.from_env({}) == Settings()


def test_reads_upper_case_variables() -> None:
    """Each setting comes from its upper-case variable, converted to its type."""
    environ = {
        "MODEL_DIR": "/models/current",
        "PORT": "9000",
        "WORKERS": "3",
        "BATCH_ENABLED": "false",
        "BATCH_WINDOW_US": "200",
        "RELOAD_POLL_S": "0.5",
        "RELOAD_TOKEN": "a-long-enough-token",
    }
    settings = Settings.from_env(environ)
    assert settings.model_dir == "/models/current"
    assert (settings.port, settings.workers, settings.batch_window_us) == (9000, 3, 200)
    assert settings.batch_enabled is False
    assert settings.reload_poll_s == 0.5
    assert settings.reload_token == environ["RELOAD_TOKEN"]


def test_overrides_win_over_environment() -> None:
    """Explicit overrides (the CLI's flags) replace the environment's values."""
    assert Settings.from_env({"PORT": "9000"}, port=9100).port == 9100


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("WORKERS", "0"),
        ("BATCH_ENABLED", "maybe"),
        ("BATCH_MAX_ROWS", "100000"),
        ("RELOAD_TOKEN", "short"),
        ("RELOAD_POLL_S", "-1"),
        ("LOG_LEVEL", "loud"),
        ("PREDICTION_LOG_SAMPLE", "1.5"),
        ("PREDICTION_LOG_BUFFER", "0"),
        ("PREDICTION_LOG_SEGMENT_BYTES", "100"),
        ("PREDICTION_LOG_FLUSH_S", "0"),
        ("SHADOW_SHARE", "1.5"),
        ("CANARY_SHARE", "-0.1"),
        ("CANARY_SHARE", "1.01"),
        ("SHADOW_QUEUE_MAX", "0"),
    ],
)
def test_invalid_values_are_rejected(variable: str, value: str) -> None:
    """A malformed or out-of-range variable fails at start-up with its name in the message."""
    with pytest.raises(SettingsError, match=f"invalid server setting: {variable}="):
        Settings.from_env({variable: value})


def _settings_with_unbounded_shares() -> type[msgspec.Struct]:
    """A copy of `Settings` whose shadow and canary shares are plain floats, without bounds."""
    fields = [
        (
            field.name,
            float if field.name.endswith("_share") else field.type,
            msgspec.field(default=field.default, default_factory=field.default_factory),
        )
        for field in msgspec.structs.fields(Settings)
    ]
    return msgspec.defstruct(
        "Settings", fields, kw_only=True, frozen=True, forbid_unknown_fields=True
    )


@pytest.mark.parametrize(("variable", "value"), [("SHADOW_SHARE", "1.5"), ("CANARY_SHARE", "-0.1")])
def test_without_their_bounds_shares_outside_0_1_pass_start_up(variable: str, value: str) -> None:
    """Broken copy: `from_env` on a Settings without the shares' bounds takes 1.5 and -0.1."""
    unbounded = _settings_with_unbounded_shares()
    settings = Settings.from_env.__func__(unbounded, {variable: value})  # type: ignore[attr-defined]
    assert getattr(settings, variable.lower()) == float(value)


def test_settings_are_frozen() -> None:
    """Settings cannot change after validation."""
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]
