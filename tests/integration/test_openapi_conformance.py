"""Schemathesis against a real `car-serve`: the OpenAPI document is what the server does.

Every check, positive and negative data, all four phases (examples, coverage, fuzzing,
stateful), a fixed seed and a bounded number of cases per operation, so a run is reproducible
and fits the CI budget. The reload endpoint is exercised with its token (and without, by the
`ignored_auth` check).
"""

import json
import subprocess
from pathlib import Path

import pytest

from ..programs import program
from .conftest import serve

pytestmark = [
    pytest.mark.integration,
    pytest.mark.needs("car-serve", "schemathesis"),
]

SEED = 20261127
#: Cases per operation and phase: about a thousand requests in all, half a minute here.
MAX_EXAMPLES = 100
TOKEN = "schemathesis-reload-token"  # noqa: S105 - a test server's, on loopback


@pytest.mark.slow
def test_server_conforms_to_its_openapi_document(tmp_path: Path, model_bundle: Path) -> None:
    """Schemathesis (all checks, positive and negative) finds no failure and no error."""
    schemathesis = program("schemathesis")
    with serve(model_bundle, tmp_path / "server.log", RELOAD_TOKEN=TOKEN) as server:
        result = subprocess.run(
            [
                str(schemathesis),
                "run",
                f"{server.url}/schema/openapi.json",
                "--checks=all",
                "--mode=all",
                f"--seed={SEED}",
                f"--max-examples={MAX_EXAMPLES}",
                "--workers=1",
                "--request-timeout=30",
                f"--header=Authorization: Bearer {TOKEN}",
                "--report=json",
                f"--report-json-path={tmp_path / 'report.json'}",
            ],
            cwd=tmp_path,  # schemathesis keeps its example database in the working directory
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert "Traceback" not in server.log.read_text()
    report = json.loads((tmp_path / "report.json").read_text())
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    assert report["test_cases"]["with_failures"] == 0, summary
    assert report["test_cases"]["errored"] == 0, summary
    assert report["errors"] == [], summary
    assert report["test_cases"]["generated"] >= 500
    # predict, batch, health, ready, model, reload, vocabulary (the page itself is not in it)
    assert report["operations"]["tested"] == report["operations"]["total"] == 7
    assert {phase["status"] for phase in report["phases"].values()} == {"success"}
    assert not any(report["warnings"].values()), report["warnings"]  # the token was used
    print(  # the figures for the record: pytest -s shows them
        f"schemathesis: {report['test_cases']['generated']} cases, 0 failures, "
        f"{report['running_time']:.1f} s"
    )
