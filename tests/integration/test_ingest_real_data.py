"""Ingest and features on the real auto.ru files in ../shared/data (CI has them beside the repo).

Outputs go to a temporary folder; nothing of the real data is written into the repository.
"""

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from training.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]
RAW_DIR = REPO_ROOT.parent / "shared" / "data"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (RAW_DIR / "auto_ru_2020-09-09_moscow.csv.gz").is_file() and not os.environ.get("CI"),
        reason="the real auto.ru files are not beside the repository",
    ),
]


def test_real_files_ingest_with_every_row_accounted_for(tmp_path: Path) -> None:
    """Both real files ingest; accepted + duplicates + quarantined equals the rows read."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["data"]["raw_dir"] = str(RAW_DIR)
    params["paths"] = {key: str(tmp_path / value) for key, value in params["paths"].items()}
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")

    assert main(["--params", str(params_path), "ingest"]) == 0
    assert main(["--params", str(params_path), "features"]) == 0

    paths = params["paths"]
    report = json.loads(Path(paths["ingest_report"]).read_text(encoding="utf-8"))
    primary = report["sources"]["autoru_2020_moscow"]
    market = report["sources"]["autoru_2022_msk_spb"]
    assert primary["rows_in"] == 78_221
    assert market["rows_in"] == 26_751
    for counts in (primary, market):
        total = counts["accepted"] + counts["duplicates_collapsed"] + counts["quarantined"]
        assert total == counts["rows_in"]
        assert sum(counts["quarantined_by_reason"].values()) == counts["quarantined"]
        assert counts["accepted"] > 0.9 * counts["rows_in"]
    quarantine = Path(paths["quarantine"]).read_text(encoding="utf-8").splitlines()
    assert len(quarantine) == primary["quarantined"] + market["quarantined"]

    cars = pd.read_parquet(paths["features"])
    assert len(cars) == report["listings"]
    assert cars["listing_id"].is_unique
    assert set(cars["source"]) == {"autoru_2020_moscow", "autoru_2022_msk_spb"}
