"""The whole pipeline on the real auto.ru files, then its champion served by a real Granian.

A copy of the repository (tracked files only) runs `dvc repro` from scratch against
../shared/data, exactly as a newcomer's `make train` does; the bundle it exports is then served
by `car-serve` and must answer with the graph's own prices for real test rows.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import yaml

from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES

from .conftest import free_port, stop

REPO_ROOT = Path(__file__).resolve().parents[2]
RAW_DIR = REPO_ROOT.parent / "shared" / "data"
BIN = Path(sys.executable).parent

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (RAW_DIR / "auto_ru_2020-09-09_moscow.csv.gz").is_file() and not os.environ.get("CI"),
        reason="the real auto.ru files are not beside the repository",
    ),
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of the repository after a full `dvc repro` on the real data."""
    root = tmp_path_factory.mktemp("clone") / "repo"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, tracked.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    params["data"]["raw_dir"] = str(RAW_DIR)
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), "utf-8")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        [str(BIN / "dvc"), "repro", "--force"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert result.returncode == 0, f"dvc repro failed:\n{result.stdout[-4000:]}\n{result.stderr}"
    return root


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_repro_reports_every_row_and_an_equal_feast_frame(project: Path) -> None:
    """Ingest accounts for every real row; the Feast frame equals the feature table."""
    ingest = _json(project / "data/reports/ingest.json")
    for counts in ingest["sources"].values():
        total = counts["accepted"] + counts["duplicates_collapsed"] + counts["quarantined"]
        assert total == counts["rows_in"]
    feast = _json(project / "data/reports/feature_store.json")
    assert feast["equals_feature_table"] is True
    assert feast["rows"] == ingest["listings"]


def test_repro_trains_a_model_of_minimum_quality(project: Path) -> None:
    """The test split's MAPE stays under a floor far below the naive baseline's 0.177."""
    test = _json(project / "data/reports/metrics.json")["test"]
    assert test["mape"] < 0.14
    assert test["r2_log"] > 0.9
    manifest = _json(project / "data/model/manifest.json")
    assert manifest["parity_max_rel_diff"] <= 1e-4
    assert _json(project / "data/reports/promotion.json")["promote"] is True


@pytest.fixture(scope="module")
def served(project: Path) -> Iterator[str]:
    """`car-serve` (1 worker) on the bundle the pipeline exported."""
    port = free_port()
    env = {**os.environ, "MODEL_DIR": str(project / "data/model"), "RELOAD_POLL_S": "0"}
    log = project / "car-serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(BIN / "car-serve"), "--port", str(port), "--workers", "1"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text(encoding="utf-8", errors="replace")
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.2)
        yield url
    finally:
        stop(process)


def test_served_champion_answers_real_test_rows_like_the_graph(project: Path, served: str) -> None:
    """Real test rows over HTTP get the ONNX graph's prices, single and batch alike."""
    rows = pd.read_parquet(project / "data/splits/test.parquet").head(50)
    cars = [
        {name: (None if pd.isna(row[name]) else _plain(row[name], name)) for name in FIELD_NAMES}
        for _, row in rows.iterrows()
    ]
    batch = httpx.post(f"{served}/predict/batch", json={"cars": cars}, timeout=10)
    assert batch.status_code == 200, batch.text
    prices = batch.json()["prices_rub"]
    singles = [httpx.post(f"{served}/predict", json=car, timeout=10).json() for car in cars[:10]]
    assert [s["price_rub"] for s in singles] == prices[:10]

    session = ort.InferenceSession(str(project / "data/model/model.onnx"))
    feeds = {
        name: (
            np.array([[car[name]] for car in cars], dtype=object)
            if name in CATEGORICAL_FIELDS
            else np.array(
                [[np.nan if car[name] is None else car[name]] for car in cars], dtype=np.float32
            )
        )
        for name in FIELD_NAMES
    }
    expected = session.run(["price"], feeds)[0].reshape(-1)
    np.testing.assert_allclose(prices, expected, rtol=1e-6)
    assert np.median(np.abs(np.array(prices) / rows["price"].to_numpy() - 1)) < 0.2


def _plain(value: Any, name: str) -> Any:
    if name in CATEGORICAL_FIELDS:
        return str(value)
    return float(value) if name in ("engine_power", "engine_displacement") else int(value)
