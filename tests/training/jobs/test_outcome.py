"""`car-train outcome`: one JSON line for Airflow, or a clear error naming what is missing."""

import json
from pathlib import Path

import pytest

from training.cli import main
from training.config import load_params


def _outcome(workdir: Path, *args: str) -> int:
    return main(["--params", str(workdir / "params.yaml"), "outcome", *args])


def test_drift_outcome_is_the_summary_verdict_as_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The drift run's verdict and reasons, printed last and written to --out."""
    summary_dir = load_params(workdir / "params.yaml").paths.drift / "day-1"
    summary_dir.mkdir(parents=True)
    verdict = {"retrain": True, "reasons": ["5 of 16 fields drift"], "rules": []}
    (summary_dir / "summary.json").write_text(json.dumps({"run": "day-1", "verdict": verdict}))
    out = workdir / "xcom" / "return.json"
    assert _outcome(workdir, "drift", "--run", "day-1", "--out", str(out)) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    # A summary written before the market clock has no action: a rule then meant a retrain.
    expected = {
        "step": "drift",
        "run": "day-1",
        "retrain": True,
        "reasons": verdict["reasons"],
        "action": "retrain",
    }
    assert json.loads(last) == expected
    assert json.loads(out.read_text()) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("drift",), "outcome drift needs --run NAME"),
        (("drift", "--run", "nope"), "summary.json: not found; run `car-train drift` first"),
        (("retrain",), "retrain.json: not found; run `car-train retrain` first"),
        (("promote",), "promotion.json: not found; run `car-train promote` first"),
    ],
)
def test_a_missing_report_is_an_error_naming_it(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    """No run named, or no report yet: exit 1 with the file and the command that writes it."""
    assert _outcome(workdir, *args) == 1
    assert message in capsys.readouterr().err
