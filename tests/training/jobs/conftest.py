"""Scratch projects for the jobs: synthetic raw files, params pointing at them, the Feast repo."""

import copy
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from scripts import stage_code
from training.cli import main
from training.config import Params, load_params
from training.core.retrain import ORDER

from ..conftest import REPO_ROOT, merged, relocated, repo_params
from ..conftest import write_params as write_params_file
from ..raw_markets import synthetic_2020, synthetic_2022, write_raw

#: Settings for a project of `raw_markets.level_shifted_markets(400)`: few rows, all usable.
LEVEL_SHIFT_PROJECT: dict[str, dict[str, Any]] = {
    "split": {"val_fraction": 0.3},
    "retrain": {"min_holdout_rows": 50, "val_fraction": 0.3},
    "market": {"min_window_rows": 100},
}

#: The pipeline's steps from raw files to a promoted champion (then `fetch-model` publishes it).
TO_CHAMPION = ("ingest", "features", "split", "train", "export", "register", "promote")


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
    for step in TO_CHAMPION:
        assert main(["--params", path, step]) == 0, step
    assert main(["--params", path, "fetch-model", "--alias", "champion"]) == 0
    return raw, path


def published_project(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    markets: tuple[pd.DataFrame, pd.DataFrame],
    overrides: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """`champion_project` in a fresh temporary folder: its `root` and the params it wrote."""
    root = tmp_path_factory.mktemp(name)
    raw, _ = champion_project(root, markets, overrides)
    return {"root": root, "raw": raw}


def params_variant(
    project: dict[str, Any], name: str, **sections: dict[str, Any]
) -> tuple[str, Params]:
    """The project's params with `sections` laid over them, in `params-<name>.yaml` beside."""
    raw = merged(copy.deepcopy(project["raw"]), **sections)
    path = write_params_file(raw, project["root"] / f"params-{name}.yaml")
    return str(path), load_params(path)


def newest_day_before_holdout(params: Params, holdout_rows: int) -> str:
    """The day of the newest 2022 listing older than the newest `holdout_rows` (the holdout)."""
    labels = pd.read_parquet(params.paths.labels)
    new = labels.loc[labels["source"] == "autoru_2022_msk_spb"].sort_values(list(ORDER))
    newest = new["event_timestamp"].iloc[-holdout_rows - 1]
    return str(pd.Timestamp(newest).tz_convert("UTC").date())


def labels_with_2022_prices_times_1000(project: dict[str, Any]) -> dict[str, Any]:
    """A labels table whose 2022 prices are in thousandths of a rouble, in place of the real."""
    source = Path(project["raw"]["paths"]["labels"])
    labels = pd.read_parquet(source)
    is_new = labels["source"] == "autoru_2022_msk_spb"
    labels.loc[is_new, "price"] = labels.loc[is_new, "price"] * 1000
    target = source.with_name("labels-x1000.parquet")
    labels.to_parquet(target)
    return {"labels": str(target)}


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
    return stage_code.read_yaml("dvc.yaml")
