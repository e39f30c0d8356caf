"""The whole pipeline on the real auto.ru files, then its champion served by a real Granian.

A copy of the repository (tracked files only, the real files at ../shared/data beside it) runs
`dvc repro` from scratch, exactly as a newcomer's `make train` does. It must reproduce the
committed dvc.lock byte for byte (deterministic outputs, a lock that is not stale), and a second
`dvc repro` must find nothing to do. The champion it publishes is then served by `car-serve`
and must answer with the graph's own prices for real test rows.
"""

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES
from shared_schema.bundle import MANIFEST_FILE, MODEL_FILE
from shared_schema.serving_folder import resolve
from training.config import Params, load_params
from training.io import registry
from training.io.mlflow_service import MlflowService
from training.io.splits import split_file

from ..programs import program
from .conftest import run_demo, serve

REPO_ROOT = Path(__file__).resolve().parents[2]
RAW_DIR = REPO_ROOT.parent / "shared" / "data"
BIN = Path(sys.executable).parent

pytestmark = [
    pytest.mark.needs("git", "dvc", "car-serve"),
    pytest.mark.integration,
    pytest.mark.skipif(
        not (RAW_DIR / "auto_ru_2020-09-09_moscow.csv.gz").is_file() and not os.environ.get("CI"),
        reason="the real auto.ru files are not beside the repository",
    ),
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of the repository after a full `dvc repro` on the real data."""
    clone = tmp_path_factory.mktemp("clone")
    root = clone / "repo"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, tracked.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    # The real files sit beside the copy as they sit beside the repository: params.yaml as is.
    (clone / "shared").mkdir()
    (clone / "shared" / "data").symlink_to(RAW_DIR.resolve(), target_is_directory=True)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    result = _dvc(root, "repro")
    assert result.returncode == 0, f"dvc repro failed:\n{result.stdout[-4000:]}\n{result.stderr}"
    return root


def _dvc(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [program("dvc"), *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )


@pytest.fixture(scope="module")
def params(project: Path) -> Params:
    """The copy's params (the repository's own)."""
    return load_params(project / "params.yaml")


@pytest.mark.slow
def test_repro_from_scratch_reproduces_the_committed_lock(project: Path) -> None:
    """A fresh clone's `dvc repro` writes the committed dvc.lock; a second run does nothing."""
    committed = (REPO_ROOT / "dvc.lock").read_text(encoding="utf-8")
    assert (project / "dvc.lock").read_text(encoding="utf-8") == committed
    again = _dvc(project, "repro")
    assert again.returncode == 0, again.stderr
    assert "didn't change, skipping" in again.stdout
    assert "Running stage" not in again.stdout
    assert (project / "dvc.lock").read_text(encoding="utf-8") == committed


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_repro_reports_every_row_and_an_equal_feast_frame(project: Path, params: Params) -> None:
    """Ingest accounts for every real row of both files; the Feast frame equals the table."""
    ingest = _json(project / params.paths.ingest_report)
    primary = ingest["sources"]["autoru_2020_moscow"]
    market = ingest["sources"]["autoru_2022_msk_spb"]
    assert primary["rows_in"] == 78_221
    assert market["rows_in"] == 26_751
    for counts in (primary, market):
        total = counts["accepted"] + counts["duplicates_collapsed"] + counts["quarantined"]
        assert total == counts["rows_in"]
        assert sum(counts["quarantined_by_reason"].values()) == counts["quarantined"]
        assert counts["accepted"] > 0.9 * counts["rows_in"]
    quarantine = (project / params.paths.quarantine).read_text(encoding="utf-8").splitlines()
    assert len(quarantine) == primary["quarantined"] + market["quarantined"]
    cars = pd.read_parquet(project / params.paths.features)
    assert len(cars) == ingest["listings"]
    assert cars["listing_id"].is_unique
    assert set(cars["source"]) == {"autoru_2020_moscow", "autoru_2022_msk_spb"}
    feast = _json(project / params.paths.feature_store_report)
    assert feast["equals_feature_table"] is True
    assert feast["rows"] == ingest["listings"]


@pytest.mark.slow
def test_repro_trains_a_model_of_minimum_quality(project: Path, params: Params) -> None:
    """The test split's MAPE stays under a floor far below the naive baseline's."""
    test = _json(project / params.paths.test_metrics)["test"]
    assert test["mape"] < 0.14
    assert test["r2_log"] > 0.9
    manifest = _json(resolve(project / params.paths.serving_bundle).directory / MANIFEST_FILE)
    assert manifest["parity_max_rel_diff"] <= 1e-4
    assert manifest["model_version"] == "1"
    assert _json(project / params.paths.promotion)["promote"] is True


@pytest.fixture(scope="module")
def served(project: Path, params: Params) -> Iterator[str]:
    """`car-serve` (1 worker) on the champion the pipeline published."""
    with serve(project / params.paths.serving_bundle, project / "car-serve.log") as server:
        yield server.url


@pytest.mark.slow
def test_served_champion_answers_real_test_rows_like_the_graph(
    project: Path, params: Params, served: str
) -> None:
    """Real test rows over HTTP get the ONNX graph's prices, single and batch alike."""
    rows = pd.read_parquet(split_file(project / params.paths.splits, "test")).head(50)
    cars = [
        {name: (None if pd.isna(row[name]) else _plain(row[name], name)) for name in FIELD_NAMES}
        for _, row in rows.iterrows()
    ]
    batch = httpx.post(f"{served}/predict/batch", json={"cars": cars}, timeout=10)
    assert batch.status_code == 200, batch.text
    prices = batch.json()["prices_rub"]
    singles = [httpx.post(f"{served}/predict", json=car, timeout=10).json() for car in cars[:10]]
    assert [s["price_rub"] for s in singles] == prices[:10]

    # The graph fed by hand from the manifest's JSON (not by the feed rule the server uses):
    # each input's columns are its `fields`, or the field it is named after.
    bundle_dir = resolve(project / params.paths.serving_bundle).directory
    session = ort.InferenceSession(str(bundle_dir / MODEL_FILE))
    manifest = json.loads((bundle_dir / MANIFEST_FILE).read_text("utf-8"))

    def value(car: dict[str, Any], name: str) -> Any:
        missing = car[name] is None and name not in CATEGORICAL_FIELDS
        return np.nan if missing else car[name]

    feeds, fed = {}, []
    for spec in manifest["inputs"]:
        columns = spec.get("fields") or [spec["name"]]
        dtype = object if spec["type"] == "string" else np.float32
        feeds[spec["name"]] = np.array([[value(car, c) for c in columns] for car in cars], dtype)
        fed += columns
    assert sorted(fed) == sorted(FIELD_NAMES)
    expected = session.run(["price"], feeds)[0].reshape(-1)
    np.testing.assert_allclose(prices, expected, rtol=1e-6)
    assert np.median(np.abs(np.array(prices) / rows["price"].to_numpy() - 1)) < 0.2


def _plain(value: Any, name: str) -> Any:
    if name in CATEGORICAL_FIELDS:
        return str(value)
    return float(value) if name in ("engine_power", "engine_displacement") else int(value)


@pytest.mark.slow
def test_drift_loop_catches_the_2022_market_and_a_retrain_recovers(
    project: Path, params: Params
) -> None:
    """`scripts/drift_demo.py` on the pipeline's champion (README, "Drift loop").

    Runs last, though the demo puts the registry's aliases back. Over HTTP through a real
    `car-serve` with the prediction log on: the 2020 test split raises no alarm; the 2022
    listings drift and their realized error rises; the retrain passes the gate and the server
    hot-reloads it; on the newest 2022 slice, served by the new champion, the realized error
    falls against the old champion's on the same cars.
    """
    served_before, status_before = _served_state(project, params), _dvc(project, "status")
    print(run_demo("drift_demo", project, timeout=1500))
    demo = _json(project / params.paths.drift / "demo.json")
    calm, shifted = demo["2020"], demo["2022"]
    assert calm["retrain"] is False, calm["reasons"]
    assert calm["records"] == calm["labelled"] > 7000
    assert shifted["retrain"] is True
    assert len(shifted["drifting_fields"]) >= 4
    assert shifted["realized_mape"] > 2 * shifted["reference_mape"]
    assert shifted["records"] == shifted["labelled"] > 26000
    assert demo["retrain"]["promote"] is True, demo["retrain"]["reason"]
    assert demo["served_after"] == demo["retrain"]["challenger"]["version"]
    before, after = demo["2022-slice-before"], demo["2022-after"]
    assert before["labelled"] == after["labelled"] == demo["retrain"]["holdout_rows"]
    assert after["realized_mape"] < 0.8 * before["realized_mape"]
    # The market clock: the refresh prices the newest slice as the one-scalar baseline does
    # (the same median on the same rows), leaves 2020 at 2020's level as it was, and the
    # retrain on index-deflated prices beats both without losing 2020.
    refresh, retrain, scalar = demo["refresh"], demo["retrain"], demo["one_scalar"]
    assert refresh["promote"] is True, refresh["reason"]
    assert refresh["challenger"]["holdout_mape"] == pytest.approx(scalar["holdout_mape"], abs=1e-3)
    assert refresh["challenger"]["test_2020_mape"] == pytest.approx(
        refresh["champion"]["test_2020_mape"], rel=1e-5
    )
    assert retrain["challenger"]["holdout_mape"] < scalar["holdout_mape"]
    assert retrain["challenger"]["test_2020_mape"] <= 1.05 * refresh["champion"]["test_2020_mape"]
    # The demo leaves the project as it found it: champion alias, served bundle, DVC outputs.
    assert _served_state(project, params) == served_before
    status = _dvc(project, "status")
    assert (status.returncode, status.stdout) == (0, status_before.stdout), status.stderr


def _served_state(project: Path, params: Params) -> tuple[str | None, str]:
    """The champion alias's version and the digest the serving folder's `current` names.

    The store by its absolute URI: MLflow caches stores by URI, and a relative one may already
    name another test's store in this process.
    """
    store = project / params.registry.tracking_uri.removeprefix("sqlite:///")
    uri = f"sqlite:///{store}"
    service = MlflowService(uri, uri, params.registry.experiment, project / "artifacts")
    champion = registry.version_by_alias(service, params.registry.model_name, registry.CHAMPION)
    served = resolve(project / params.paths.serving_bundle).directory.name
    return (None if champion is None else str(champion.version), served)
