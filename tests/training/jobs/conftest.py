"""Synthetic raw files in both source formats, and params pointing at them.

The rows are made up here; the real auto.ru data is never copied into the repository.
"""

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from training.cli import main

from ..conftest import REPO_ROOT, relocated, repo_params
from ..conftest import write_params as write_params_file

#: The pipeline's steps from raw files to a promoted champion (then `fetch-model` publishes it).
TO_CHAMPION = ("ingest", "features", "split", "train", "export", "register", "promote")


def row_2020(**overrides: Any) -> dict[str, Any]:
    """One plausible row of the 2020 EDA CSV."""
    row: dict[str, Any] = {
        "body_type": "седан",
        "brand": "TOYOTA",
        "color": "серый",
        "fuel_type": "бензин",
        "model_year": 2012,
        "n_doors": 4,
        "production_year": 2014,
        "vehicle_transmission": "автомат",
        "engine_power": 181.0,
        "mileage": 98_000,
        "drive_type": "передний",
        "n_owners": "2",
        "price": 1_150_000.0,
        "model_name": "CAMRY",
        "is_original_techpass": 1,
        "is_lefthand_drive": 1,
        "engine_displacement": 2.5,
    }
    return row | overrides


def row_2022(**overrides: Any) -> dict[str, Any]:
    """One plausible row of the raw 2022 auto.ru scrape."""
    row: dict[str, Any] = {
        "brand": "Mitsubishi",
        "model": "Lancer",
        "year": 2008.0,
        "bodytype": "седан",
        "kmage": 174_000.0,
        "color": "серебристый",
        "engineDisplacement": 2.0,
        "enginePower": 143.0,
        "fuelType": " Бензин",
        "vehicleTransmission": "вариатор",
        "drive": "передний",
        "wheel": "Левый",
        "state": "Не требует ремонта",
        "owner": "3 или более",
        "pts": "Оригинал",
        "customs": "Растаможен",
        "owningTime": None,
        "price": 800_000.0,
        "region": "moscow",
        "parse_date": "2022-03-28",
        "sell_id": 1_115_194_851,
        "super_gen": json.dumps({"mark": "MITSUBISHI", "model": "LANCER", "year": 2008}),
    }
    return row | overrides


def synthetic_2020(n: int = 40) -> pd.DataFrame:
    """N distinct valid 2020 rows (mileage and price vary)."""
    rows = [
        row_2020(mileage=10_000 * (i + 1), price=1_500_000.0 - 5_000 * (i % 250), brand=brand)
        for i, brand in zip(range(n), ["TOYOTA", "BMW", "KIA", "SKODA"] * n, strict=False)
    ]
    return pd.DataFrame(rows)


def synthetic_2022(n: int = 20) -> pd.DataFrame:
    """N distinct valid 2022 rows."""
    return pd.DataFrame(
        [row_2022(sell_id=1_000 + i, kmage=5_000.0 * (i + 1)) for i in range(n)]
    ).astype({"sell_id": "Int64"})


def write_raw(raw_dir: Path, frame_2020: pd.DataFrame, frame_2022: pd.DataFrame) -> None:
    """Write the two raw files under their real names."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    frame_2020.to_csv(raw_dir / "auto_ru_2020-09-09_moscow.csv.gz", index=False)
    frame_2022.to_parquet(raw_dir / "auto_ru_2022-03_msk_spb_xelorr.parquet", index=False)


def write_params(workdir: Path, raw_dir: Path) -> Path:
    """`workdir/params.yaml`: outputs under `workdir`, raw files in `raw_dir`, Feast repo beside.

    The Feast repo copy reads this file (its parent's params.yaml), as the real one does.
    """
    raw = relocated(
        workdir,
        data={"raw_dir": str(raw_dir)},
        feature_store={"repo_path": str(workdir / "feature_repo")},
    )
    return write_params_file(raw, workdir / "params.yaml")


def copy_feature_repo(workdir: Path) -> None:
    """The repository's Feast repo copied to `workdir/feature_repo` (it reads the params beside)."""
    shutil.copytree(
        REPO_ROOT / repo_params()["feature_store"]["repo_path"],
        workdir / "feature_repo",
        ignore=shutil.ignore_patterns("__pycache__", "data"),
    )


def champion_project(
    root: Path,
    markets: tuple[pd.DataFrame, pd.DataFrame],
    overrides: dict[str, dict[str, Any]],
) -> tuple[dict[str, Any], str]:
    """A synthetic project under `root` run to a published champion (registry version 1).

    The two markets as raw files, a copy of the Feast repo, `root/params.yaml` (the repository's
    params relocated under `root`, with `overrides`), then the pipeline to a promoted champion
    and `fetch-model` to `paths.serving_bundle`, with no tracking URI from the environment.

    Returns:
        The params as written, and the params file's path.
    """
    write_raw(root / "raw", *markets)
    copy_feature_repo(root)
    raw = relocated(
        root,
        data={"raw_dir": str(root / "raw")},
        feature_store={"repo_path": str(root / "feature_repo")},
        **overrides,
    )
    path = str(write_params_file(raw, root / "params.yaml"))
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        for step in TO_CHAMPION:
            assert main(["--params", path, step]) == 0, step
        assert main(["--params", path, "fetch-model", "--alias", "champion"]) == 0
    return raw, path


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A scratch project: synthetic raw files, a params file and a copy of the Feast repo."""
    raw_dir = tmp_path / "raw"
    write_raw(raw_dir, synthetic_2020(), synthetic_2022())
    write_params(tmp_path, raw_dir)
    copy_feature_repo(tmp_path)
    return tmp_path


@pytest.fixture
def dvc_yaml() -> dict[str, Any]:
    """The repository's dvc.yaml as plain data (a fresh copy: tests may break it)."""
    raw: dict[str, Any] = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    return raw
