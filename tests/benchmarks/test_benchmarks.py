"""The benchmark scripts start and answer, so they cannot rot. Behaviour only, no timings.

Everything runs on synthetic cars and a tiny stand-in model (five trees) built here: no
`data/` needed.
"""

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from benchmarks.champion import Champion, load_standin
from benchmarks.data import car_dicts, write_payloads
from benchmarks.load import Sustained, run_locust
from benchmarks.model_bench import measure
from benchmarks.report import goals, markdown
from benchmarks.servers import RunningServer, ServerSpec, free_port, post_json, server_specs
from benchmarks.standin import PIPELINE_FILE, write_standin

from shared_schema import FIELD_NAMES

# lightgbm 4.5's sklearn wrapper passes `force_all_finite`, renamed in scikit-learn 1.6: a
# FutureWarning on every in-process stand-in prediction, about their pairing, not our code.
pytestmark = pytest.mark.filterwarnings("ignore:.*force_all_finite.*:FutureWarning")

_VOCABULARY: dict[str, list[str]] = {
    "brand": ["BMW", "TOYOTA", "AUDI"],
    "model_name": ["5ER", "CAMRY", "A6"],
    "body_type": ["седан", "внедорожник"],
    "color": ["чёрный", "белый"],
    "fuel_type": ["бензин", "дизель"],
    "vehicle_transmission": ["автомат", "механика"],
    "drive_type": ["передний", "полный"],
    "n_owners": ["1", "2", "3+"],
}


def synthetic_frame(rows: int = 300) -> pd.DataFrame:
    """Plausible random cars with a price that falls with mileage and rises with the year."""
    rng = np.random.default_rng(0)
    records: list[dict[str, Any]] = []
    for _ in range(rows):
        year = int(rng.integers(2000, 2021))
        mileage = int(rng.integers(0, 300_000))
        record: dict[str, Any] = {k: str(rng.choice(v)) for k, v in _VOCABULARY.items()}
        record.update(
            model_year=year - int(rng.integers(0, 4)),
            production_year=year,
            n_doors=int(rng.choice([4, 5])),
            engine_power=float(rng.integers(90, 401)),
            engine_displacement=[None, 1.6, 2.0, 3.0][int(rng.integers(0, 4))],
            mileage=mileage,
            is_original_techpass=int(rng.integers(0, 2)),
            is_lefthand_drive=1,
            price=math.exp(13 + 0.08 * (year - 2010) - mileage / 400_000),
        )
        records.append(record)
    frame = pd.DataFrame(records)
    frame["engine_displacement"] = frame["engine_displacement"].astype(float)
    return frame[[*FIELD_NAMES, "price"]]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """Synthetic training and payload rows."""
    return synthetic_frame()


@pytest.fixture(scope="module")
def tiny_champion(tmp_path_factory: pytest.TempPathFactory, frame: pd.DataFrame) -> Champion:
    """A five-tree stand-in with every form the benchmarks use (ONNX, pipeline, booster)."""
    directory = write_standin(
        frame,
        tmp_path_factory.mktemp("standin"),
        n_estimators=5,
        num_leaves=7,
        min_child_samples=5,
    )
    return load_standin(bundle_dir=directory)


@pytest.fixture(scope="module")
def payloads(tmp_path_factory: pytest.TempPathFactory, frame: pd.DataFrame) -> Path:
    """The load generator's cars file."""
    return write_payloads(car_dicts(frame), tmp_path_factory.mktemp("load") / "cars.json")


@pytest.mark.slow
def test_baseline_prices_one_car_and_a_batch_in_our_shapes(
    tiny_champion: Champion, frame: pd.DataFrame, tmp_path: Path
) -> None:
    """The baseline server starts, gets ready and answers /predict and /predict/batch."""
    port = free_port()
    command = (sys.executable, "-m", "benchmarks.baseline")
    command += ("--pipeline", str(tiny_champion.bundle_dir / PIPELINE_FILE), "--port", str(port))
    server = RunningServer(ServerSpec("baseline", "baseline", command), port, tmp_path / "log")
    try:
        cars = car_dicts(frame.head(3))
        status, body = post_json(f"{server.url}/predict", json.dumps(cars[0]).encode())
        assert status == 200, body
        answer = json.loads(body)
        assert set(answer) == {"price_rub", "model_version"}
        assert answer["price_rub"] > 0
        status, body = post_json(f"{server.url}/predict/batch", json.dumps({"cars": cars}).encode())
        assert status == 200, body
        assert len(json.loads(body)["prices_rub"]) == 3
        bad = {**cars[0], "mileage": -1}
        assert post_json(f"{server.url}/predict", json.dumps(bad).encode())[0] == 422
        assert server.memory()["max_worker_rss_mb"] > 0
    finally:
        server.stop()


@pytest.mark.slow
def test_locust_scenarios_run_against_our_server(
    tiny_champion: Champion, payloads: Path, tmp_path: Path
) -> None:
    """Locust's three scenarios run against car-serve and every request is answered."""
    port = free_port()
    spec = next(s for s in server_specs(tiny_champion, port) if s.name == "ours")
    server = RunningServer(spec, port, tmp_path / "server.log")
    try:
        step = run_locust(
            server,
            "PredictUser BatchUser MixedUser",
            users=3,
            user_rate=20.0,
            seconds=3,
            payloads=payloads,
            out_dir=tmp_path,
            label="smoke",
        )
    finally:
        server.stop()
    assert step["requests"] > 0
    assert step["failures"] == 0
    assert {"/predict", "/predict/batch"} <= set(step["locust_csv"]["by_name"])


def test_model_bench_times_every_runtime_and_they_agree(
    tiny_champion: Champion, frame: pd.DataFrame, tmp_path: Path
) -> None:
    """The model benchmark times ONNX, pipeline and booster (and lleaves when it compiles)."""
    measured = measure(tiny_champion, frame, sizes=(1, 10), quick=True, lleaves_cache=tmp_path)
    assert {"onnx", "onnx_from_structs", "pipeline", "pipeline_from_dicts", "booster"} <= set(
        measured["results"]
    )
    if "lleaves" not in measured["results"]:
        assert measured["notes"]["lleaves"].startswith("not measured")
    for cells in measured["results"].values():
        assert set(cells) == {"1", "10"}
        assert all(cell["us_per_row"] > 0 for cell in cells.values())
    assert measured["parity"]["onnx_vs_pipeline"] < 1e-4
    assert measured["notes"]["onnx"].startswith("forest operator ai.onnx.ml.TreeEnsemble")


def _step(rate: float, rps: float, p95: float) -> dict[str, Any]:
    step = {
        "offered_rps": rate,
        "rps": rps,
        "p50_ms": p95 / 2,
        "p95_ms": p95,
        "p99_ms": p95 * 2,
        "failure_rate": 0.0,
        "loadgen_cpu": 0.5,
    }
    step["sustained"] = Sustained().holds(step)
    return step


def _server(ladder: list[dict[str, Any]], rows_per_s: float, rss: float) -> dict[str, Any]:
    return {
        "ladder": ladder,
        "max_sustained_rps": max(s["rps"] for s in ladder if s["sustained"]),
        "saturation": {**_step(0, ladder[-1]["rps"], 50.0), "offered_rps": None},
        "batch": {
            size: {"rows_per_s": rows_per_s, "p95_ms": 10.0, "rps": rows_per_s / int(size)}
            for size in ("100", "1000")
        },
        "mixed": _step(50, 50, 5.0),
        "cold_starts_s": [0.8, 0.9, 1.0],
        "memory_after_load": {"max_worker_rss_mb": rss, "max_worker_uss_mb": rss / 2},
    }


def test_report_states_each_goal_with_its_verdict() -> None:
    """The Markdown names every goal of the issue and marks a met and a missed one."""
    ours = _server([_step(100, 100, 2.0), _step(1000, 990, 5.0), _step(2000, 1500, 150)], 2e5, 120)
    baseline = _server([_step(100, 99, 20.0), _step(1000, 300, 900.0)], 2e4, 300)
    results = {
        "started_at": "2026-01-01T00:00:00+00:00",
        "commit": "abc",
        "machine": {"host": "h", "nproc": 2, "cpu_model": "cpu", "ram_gb": 4, "kernel": "k"}
        | {"python": "3.12"},
        "load_average_before": [0.1, 0.1, 0.1],
        "load_average_after": [0.5, 0.2, 0.1],
        "model": {"label": "tiny", "standin": True},
        "setup": {"step_seconds": 15, "mixed_rate_rps": 50},
        "servers": {"ours": ours, "ours_unbatched": ours, "baseline": baseline},
        "environment": {"inference_only_mb": 150.0, "full_mb": 1000.0},
    }
    verdicts = {goal: met for goal, _, _, met in goals(results)}
    assert verdicts["Max sustained single-car RPS vs baseline"] is True  # 990 vs 99
    assert verdicts["RSS per worker after load"] is True
    assert verdicts["Cold start (process start → /ready 200)"] is True
    assert verdicts["Batch rows/s per worker, 1,000-car requests"] is True
    text = markdown(results)
    assert "STAND-IN" in text
    assert "| 1,000 | 990 / 5.00 |" in text
    assert "p95 at the same rate (100 req/s)" in text
