"""`car-train replay` against a real `car-serve` with the prediction log on.

The drift loop's traffic: every listing is answered, logged under its listing id as the
request id (so labels join), and a server that is not there is a clear error.
"""

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from shared_schema.prediction_log import read_prediction_log
from training.cli import main

from .conftest import free_port, serve

pytestmark = [pytest.mark.integration, pytest.mark.needs("car-serve")]

CAR: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "data" / "car.json").read_text("utf-8")
)
PARAMS = str(Path(__file__).parents[2] / "params.yaml")


def _listings(path: Path, n: int) -> Path:
    rows = [
        {"listing_id": f"test:{i:04d}", "source": "a" if i % 2 else "b", **CAR, "mileage": 1000 * i}
        for i in range(n)
    ]
    rows[3]["engine_displacement"] = None  # a missing value goes as null
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_replay_logs_every_listing_under_its_id(
    tmp_path: Path, model_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every listing of the chosen source is answered 200 and logged with its listing id."""
    cars = _listings(tmp_path / "cars.parquet", 40)
    log_dir = tmp_path / "log"
    with serve(
        model_bundle,
        tmp_path / "server.log",
        PREDICTION_LOG_DIR=str(log_dir),
        PREDICTION_LOG_SEGMENT_SECONDS="1",
    ) as server:
        argv = ["--params", PARAMS, "replay", "--url", server.url, "--cars", str(cars)]
        assert main([*argv, "--source", "a", "--threads", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary | {"seconds": 0} == summary | {
        "sent": 20,
        "statuses": {"200": 20},
        "transport_errors": 0,
        "first_error": None,
        "seconds": 0,
    }
    read = read_prediction_log(log_dir)
    assert not read.skipped
    logged = {r.request_id: r for r in read.records}
    assert set(logged) == {f"test:{i:04d}" for i in range(1, 40, 2)}
    assert logged["test:0003"].car.engine_displacement is None
    assert logged["test:0005"].car.mileage == 5000


def test_replay_to_no_server_fails_naming_what_was_lost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nobody listening: every listing counts as a transport error, and the step fails."""
    cars = _listings(tmp_path / "cars.parquet", 5)
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["--params", PARAMS, "replay", "--url", url, "--cars", str(cars)]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["transport_errors"] == 5
    assert "5 of 5 listings not answered 200" in captured.err
    assert "ConnectionRefusedError" in captured.err


def test_replay_shuffled_sends_every_listing_in_the_seeded_order(
    tmp_path: Path, model_bundle: Path
) -> None:
    """`--shuffle SEED` with one connection: the log holds the seeded permutation."""
    cars = _listings(tmp_path / "cars.parquet", 12)
    log_dir = tmp_path / "log"
    with serve(model_bundle, tmp_path / "server.log", PREDICTION_LOG_DIR=str(log_dir)) as server:
        argv = ["--params", PARAMS, "replay", "--url", server.url, "--cars", str(cars)]
        assert main([*argv, "--threads", "1", "--shuffle", "7"]) == 0
    logged = [r.request_id for r in read_prediction_log(log_dir).records]
    expected = pd.read_parquet(cars).sample(frac=1.0, random_state=7)["listing_id"].tolist()
    assert logged == expected != sorted(expected)
