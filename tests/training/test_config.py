"""Bad params fail clearly: a PipelineError naming the key, exit code 1 from the CLI."""

from pathlib import Path

import msgspec
import pytest

from training.cli import main
from training.config import RolloutParams, load_params
from training.errors import PipelineError

from .conftest import REPO_ROOT, merged, repo_params, write_params


def test_repository_params_load() -> None:
    """The committed params.yaml is complete and valid (every key, no default to fall back on)."""
    params = load_params(REPO_ROOT / "params.yaml")
    assert params.paths.serving_bundle.name


def test_params_with_an_unknown_key_fail(tmp_path: Path) -> None:
    """A typo in a training section is an error naming the key, not a silent default."""
    raw = merged(repo_params(), train={"lightgbm": {"num_leafs": 31}})
    with pytest.raises(PipelineError, match="num_leafs"):
        load_params(write_params(raw, tmp_path / "params.yaml"))


def test_params_with_a_missing_key_fail(tmp_path: Path) -> None:
    """A key left out of params.yaml is an error naming it: there is no default elsewhere."""
    raw = repo_params()
    del raw["paths"]["splits"]
    with pytest.raises(PipelineError, match=r"missing required field `splits`"):
        load_params(write_params(raw, tmp_path / "params.yaml"))


def test_params_with_a_wrong_type_fail(tmp_path: Path) -> None:
    """A string where a number belongs is an error naming the key."""
    raw = merged(repo_params(), tune={"n_trials": "many"})
    with pytest.raises(PipelineError, match="n_trials"):
        load_params(write_params(raw, tmp_path / "params.yaml"))


def test_cli_exits_1_on_bad_params(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`car-train train` with a bad params file exits 1 and says why on stderr."""
    path = write_params(merged(repo_params(), export={"parity_tolerance": -1}), tmp_path / "p.yaml")
    assert main(["--params", str(path), "train"]) == 1
    assert "parity_tolerance" in capsys.readouterr().err


def _schedule(*steps: tuple[float, float]) -> list[dict[str, float]]:
    return [{"share": share, "hold_minutes": hold} for share, hold in steps]


@pytest.mark.parametrize(
    ("steps", "named"),
    [
        (_schedule((0.1, 5), (0.5, 5), (0.2, 5)), r"canary_steps\[2\]: share 0.2 is not above"),
        (_schedule((0.1, 5), (0.1, 5)), r"canary_steps\[1\]: share 0.1 is not above"),
        (_schedule((0.1, 5), (1.5, 5)), r"canary_steps\[1\]\.share"),
        (_schedule((0.0, 5), (0.5, 5)), r"canary_steps\[0\]\.share"),
        (_schedule((0.1, -1)), r"canary_steps\[0\]\.hold_minutes"),
    ],
)
def test_a_malformed_canary_schedule_is_refused_naming_the_entry(
    tmp_path: Path, steps: list[dict[str, float]], named: str
) -> None:
    """Shares not increasing, outside (0, 1] or a negative hold: the entry is named."""
    raw = merged(repo_params(), rollout={"canary_steps": steps})
    with pytest.raises(PipelineError, match=named):
        load_params(write_params(raw, tmp_path / "params.yaml"))


def test_an_empty_canary_schedule_is_shadow_only(tmp_path: Path) -> None:
    """`canary_steps: []` loads: no canary, the challenger is only shadowed."""
    raw = merged(repo_params(), rollout={"canary_steps": []})
    assert load_params(write_params(raw, tmp_path / "params.yaml")).rollout.canary_steps == []


def test_a_minimum_of_no_canary_answers_is_refused(tmp_path: Path) -> None:
    """`min_canary_answers: 0` would step a canary nobody used: refused, the setting named."""
    raw = merged(repo_params(), rollout={"min_canary_answers": 0})
    with pytest.raises(PipelineError, match="min_canary_answers"):
        load_params(write_params(raw, tmp_path / "params.yaml"))


def test_without_its_check_a_decreasing_canary_schedule_loads() -> None:
    """Broken copy: RolloutParams without its __post_init__ takes shares that step down."""

    class UncheckedRollout(RolloutParams, frozen=True):
        def __post_init__(self) -> None:
            pass

    section = {**repo_params()["rollout"], "canary_steps": _schedule((0.5, 5), (0.1, 5))}
    unchecked = msgspec.convert(section, UncheckedRollout)
    assert [step.share for step in unchecked.canary_steps] == [0.5, 0.1]
    with pytest.raises(msgspec.ValidationError, match="not above"):
        msgspec.convert(section, RolloutParams)
