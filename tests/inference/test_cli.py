"""`car-serve`: flags pass through to Settings, which alone holds the defaults."""

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from inference.cli import FLAGS, main, parse_args
from inference.multiprocess import MULTIPROC_ENV
from inference.settings import available_cpus

# Runs `car-serve` with Granian replaced by a recorder; prints what Granian would have got.
SCRIPT = """
import json, os, sys
import granian

seen = {}

class Recorder:
    def __init__(self, target, **options):
        seen.update(options, target=target)

    def serve(self):
        seen["prometheus_client_imported"] = "prometheus_client" in sys.modules
        seen["multiproc_dir"] = os.environ.get(sys.argv[1])
        seen["env"] = {name: os.environ.get(name) for name in ("PORT", "WORKERS", "MODEL_DIR")}
        seen["ort_telemetry_off"] = os.environ.get("ORT_DISABLE_TELEMETRY")

granian.Granian = Recorder
from inference.cli import main

code = main(sys.argv[2:])
print(json.dumps({**seen, "code": code}, default=str))
"""

SETTING_VARIABLES = ("MODEL_DIR", "HOST", "PORT", "WORKERS", "LOG_LEVEL", MULTIPROC_ENV)


def run_cli(*argv: str, **env: str) -> dict[str, Any]:
    environ = {k: v for k, v in os.environ.items() if k not in SETTING_VARIABLES} | env
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, MULTIPROC_ENV, *argv],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    seen: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return seen


def test_flags_have_no_defaults_of_their_own() -> None:
    """Without flags every override is None, so Settings decides."""
    args = parse_args([])
    assert {name: getattr(args, name) for name in FLAGS} == dict.fromkeys(FLAGS)


def test_defaults_come_from_settings() -> None:
    """With no flags and no variables, Granian gets the Settings defaults."""
    seen = run_cli()
    assert seen["code"] == 0
    assert seen["target"] == "inference.app:create_app_from_env"
    assert (seen["address"], seen["port"]) == ("127.0.0.1", 8000)
    assert seen["workers"] == available_cpus()
    assert seen["log_level"].endswith("info")
    assert seen["env"] == {"PORT": None, "WORKERS": None, "MODEL_DIR": None}


def test_flags_override_variables_and_reach_the_workers() -> None:
    """A flag wins over its variable and is exported, so the workers' Settings agree."""
    seen = run_cli("--port", "9100", "--workers", "3", PORT="9000", MODEL_DIR="/models")
    assert (seen["port"], seen["workers"]) == (9100, 3)
    assert seen["env"] == {"PORT": "9100", "WORKERS": "3", "MODEL_DIR": "/models"}


def test_headers_get_the_body_timeout() -> None:
    """Granian's header read timeout is BODY_TIMEOUT_S, not its own 30 s."""
    assert "header_read_timeout=10000" in run_cli()["http1_settings"]
    assert "header_read_timeout=2500" in run_cli(BODY_TIMEOUT_S="2.5")["http1_settings"]
    assert "header_read_timeout=60000" in run_cli(BODY_TIMEOUT_S="300")["http1_settings"]


def test_workers_start_in_multiprocess_mode() -> None:
    """Granian starts with the metrics dir set and prometheus_client not yet imported."""
    seen = run_cli()
    assert seen["multiproc_dir"]
    assert seen["prometheus_client_imported"] is False


def test_invalid_setting_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad flag fails before anything starts, naming its variable."""
    assert main(["--port", "eighty"]) == 2
    assert "invalid server setting: PORT='eighty'" in capsys.readouterr().err


def test_workers_inherit_onnxruntime_telemetry_off_even_when_asked_on() -> None:
    """The workers' environment turns onnxruntime's uploader off, whatever the caller set."""
    seen = run_cli(ORT_DISABLE_TELEMETRY="0")
    assert seen["ort_telemetry_off"] == "1"
