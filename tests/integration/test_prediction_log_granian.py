"""The prediction log of a real `car-serve` (Granian, 2 workers) under concurrent load.

Every answered car is either written (and then readable from the segments, exactly as
answered) or counted as dropped; a full disk drops and counts, and serving goes on.
"""

import contextlib
import json
import os
import re
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared_schema.prediction_log import (
    OPEN_SUFFIX,
    REQUEST_ID_HEADER,
    read_prediction_log,
    segment_paths,
)

from .conftest import ServerProcess, serve, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.needs("car-serve")]

CAR: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "data" / "car.json").read_text("utf-8")
)
WORKERS = 2
BATCH_ROWS = 50
DROPPED = "carprice_prediction_log_dropped_total"


def total(server: ServerProcess, name: str) -> float:
    """The sum of a metric's samples over its labels (0 when absent)."""
    pattern = rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$"
    return sum(float(value) for value in re.findall(pattern, server.metrics(), re.MULTILINE))


def accounted(server: ServerProcess) -> float:
    """Cars the log has written or dropped (nothing is sampled out in these tests)."""
    return total(server, "carprice_prediction_log_records_total") + total(server, DROPPED)


def logged_serve(
    tmp_path: Path, model_dir: Path, log_dir: Path, **settings: str
) -> contextlib.AbstractContextManager[ServerProcess]:
    """`car-serve` with `WORKERS` workers and the prediction log in `log_dir`."""
    log = tmp_path / "server.log"
    return serve(model_dir, log, workers=WORKERS, PREDICTION_LOG_DIR=str(log_dir), **settings)


def load(url: str, threads: int, requests: int) -> dict[str, list[float]]:
    """Concurrent clients, each alternating /predict and /predict/batch on its own connection.

    Returns:
        The prices answered per request id (a 200's `X-Request-ID`).
    """
    answered: dict[str, list[float]] = {}
    failures: list[str] = []

    def client(index: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            for number in range(requests):
                if number % 2:
                    response = http.post("/predict/batch", json={"cars": [CAR] * BATCH_ROWS})
                    prices = response.json()["prices_rub"] if response.is_success else []
                else:
                    response = http.post("/predict", json={**CAR, "mileage": index * 1000})
                    prices = [response.json()["price_rub"]] if response.is_success else []
                if response.status_code == 200:
                    answered[response.headers[REQUEST_ID_HEADER]] = prices
                elif response.status_code != 503:  # load shedding is an answer, not a bug
                    failures.append(f"{response.status_code} {response.text[:200]}")

    workers = [threading.Thread(target=client, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not failures, failures[:3]
    return answered


@pytest.mark.parametrize(
    "buffer",
    # 30 is smaller than one batch request, so drops (buffer_full) surely happen too.
    [None, "30"],
    ids=["default-buffer", "buffer-30"],
)
def test_every_answered_car_is_written_or_counted_dropped(
    tmp_path: Path, bundle_writer: Callable[..., Path], buffer: str | None
) -> None:
    """Under load, written + dropped == answered cars, over both workers' segments.

    Each written record is the answer its request got, and none is written twice.
    """
    model_dir = bundle_writer(tmp_path / "model")
    log_dir = tmp_path / "log"
    settings = {"PREDICTION_LOG_FLUSH_S": "0.05", "PREDICTION_LOG_SEGMENT_BYTES": "65536"}
    if buffer is not None:
        settings["PREDICTION_LOG_BUFFER"] = buffer
    with logged_serve(tmp_path, model_dir, log_dir, **settings) as served:
        answered = load(served.url, threads=6, requests=60)
        rows = sum(len(prices) for prices in answered.values())
        wait_for(lambda: accounted(served) == rows, "the log to account for every answer", 30)
        written = total(served, "carprice_prediction_log_records_total")
        dropped = total(served, DROPPED)
        buffer_full = total(served, f'{DROPPED}{{reason="buffer_full"}}')
    print(f"answered {len(answered)} requests, {rows} cars: written {written}, dropped {dropped}")
    assert written > 0
    assert dropped == buffer_full
    if buffer is not None:
        assert dropped > 0
    assert written + dropped == rows

    assert not [path for path in log_dir.iterdir() if path.name.endswith(OPEN_SUFFIX)]
    segments = segment_paths(log_dir)
    workers = {tuple(path.name.split("-")[2:4]) for path in segments}  # <pid>-<random>
    # Which worker takes a connection is the kernel's choice: one or both may have written.
    assert 1 <= len(workers) <= WORKERS, [path.name for path in segments]
    read = read_prediction_log(log_dir)
    assert read.skipped == {}
    assert len(read.records) == written
    keys = {(record.request_id, record.row) for record in read.records}
    assert len(keys) == len(read.records)  # no record written twice
    for record in read.records:
        assert record.price_rub == answered[record.request_id][record.row]


def _mount_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return mounted.returncode == 0


def test_a_full_disk_drops_and_counts_while_serving_goes_on(
    tmp_path: Path, bundle_writer: Callable[..., Path]
) -> None:
    """A 64 KiB tmpfs fills up: every request is still answered, the rest counted as dropped.

    The cars that did not fit are counted as write_error (logged once per worker), and the
    segments hold only whole records.
    """
    model_dir = bundle_writer(tmp_path / "model")
    log_dir = tmp_path / "full-disk"
    if not _mount_tmpfs(log_dir, "64k"):
        pytest.skip("needs root and tmpfs to make a disk that really fills up")
    try:
        settings = {"PREDICTION_LOG_FLUSH_S": "0.05", "PREDICTION_LOG_SEGMENT_BYTES": "1000000"}
        with logged_serve(tmp_path, model_dir, log_dir, **settings) as served:
            answered = load(served.url, threads=4, requests=40)
            rows = sum(len(prices) for prices in answered.values())
            wait_for(lambda: accounted(served) == rows, "the log to account for every answer", 30)
            written = total(served, "carprice_prediction_log_records_total")
            write_errors = total(served, f'{DROPPED}{{reason="write_error"}}')
        print(f"full disk: answered {rows} cars: written {written}, write_error {write_errors}")
        assert len(answered) == 4 * 40  # every request answered 200
        assert written > 0
        assert write_errors > 0
        assert written + write_errors == rows
        stderr = served.log.read_text("utf-8", errors="replace")
        reports = [line for line in stderr.splitlines() if "write_error" in line]
        assert 1 <= len(reports) <= WORKERS, reports
        assert "No space left on device" in reports[0]
        read = read_prediction_log(log_dir)
        assert read.skipped == {}
        assert len(read.records) == written
    finally:
        subprocess.run(["umount", str(log_dir)], check=True)
