import json
import re
from pathlib import Path

import pytest

from training.cli import main
from training.config import load_params

from ..raw_markets import synthetic_2020, synthetic_2022, write_raw


def test_reference_cv_reports_five_folds(workdir: Path) -> None:
    """reference-cv cross-validates on the raw 2020 rows and writes mean, spread and folds."""
    write_raw(workdir / "raw", synthetic_2020(200), synthetic_2022(3))
    params = workdir / "params.yaml"
    text = params.read_text(encoding="utf-8")
    # No tune output here: the reference protocol must not need one, whatever params.yaml says.
    assert re.search(r"use_tuned_params: (true|false)", text)
    params.write_text(
        re.sub(r"use_tuned_params: (true|false)", "use_tuned_params: false", text), "utf-8"
    )
    assert main(["--params", str(params), "reference-cv"]) == 0
    path = load_params(params).paths.reference_cv
    report = json.loads(path.read_text(encoding="utf-8"))
    assert report["rows"] == 200
    assert len(report["mape_folds"]) == 5
    assert report["mape_mean"] == pytest.approx(sum(report["mape_folds"]) / 5)
    assert 0 <= report["mape_mean"] < 1


def test_reference_cv_needs_the_raw_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without the 2020 file, reference-cv fails naming it."""
    (workdir / "raw/auto_ru_2020-09-09_moscow.csv.gz").unlink()
    assert main(["--params", str(workdir / "params.yaml"), "reference-cv"]) == 1
    assert "auto_ru_2020-09-09_moscow.csv.gz: input file not found" in capsys.readouterr().err
