"""The prediction log's writer: every answer accounted for, bounded, off the request path."""

import asyncio
import errno
import logging
import os
import stat
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from inference.metrics import Metrics
from inference.model import WARMUP_CAR
from inference.prediction_log import (
    BUFFER_FULL,
    SHUTDOWN,
    WRITE_ERROR,
    PredictionLog,
)
from inference.segment_writer import SegmentWriter
from inference.settings import Settings
from shared_schema import SCHEMA_VERSION, Car
from shared_schema.prediction_log import (
    LOG_FORMAT,
    OPEN_SUFFIX,
    REQUEST_ID_HEADER,
    PredictionRecord,
    encode_records,
    read_prediction_log,
    segment_paths,
)

from .conftest import MakeClient

CARS: list[Car] = [msgspec.structs.replace(WARMUP_CAR, mileage=1000 * i) for i in range(8)]


def unwritable_dir(tmp_path: Path) -> Path:
    """A log directory that cannot be created, even by root: its parent is a file."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    return blocker / "log"


def make_log(directory: Path, **settings: Any) -> tuple[PredictionLog, Metrics]:
    metrics = Metrics()
    options = Settings(model_dir="unused", prediction_log_dir=str(directory), **settings)
    return PredictionLog(options, metrics), metrics


def counts(metrics: Metrics) -> dict[str, float]:
    def value(name: str, labels: dict[str, str] | None = None) -> float:
        return metrics.registry.get_sample_value(name, labels or {}) or 0.0

    dropped = "carprice_prediction_log_dropped_total"
    return {
        "records": value("carprice_prediction_log_records_total"),
        "sampled_out": value("carprice_prediction_log_sampled_out_total"),
        **{
            reason: value(dropped, {"reason": reason})
            for reason in (BUFFER_FULL, WRITE_ERROR, SHUTDOWN)
        },
    }


def run_log(log: PredictionLog, requests: Sequence[Sequence[Car]], *, pause: float = 0.0) -> None:
    """Start the log, record one request per item (a pause between), stop it."""

    async def scenario() -> None:
        log.start()
        for index, cars in enumerate(requests):
            log.record(f"req{index}", cars, [float(i) for i in range(len(cars))], "1")
            if pause:
                await asyncio.sleep(pause)
        await log.stop()

    asyncio.run(scenario())


def lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def encoded(count: int) -> bytes:
    record = PredictionRecord(
        log_format=LOG_FORMAT,
        ts=datetime(2026, 11, 27, 10, tzinfo=UTC),
        request_id="r",
        row=0,
        model_version="1",
        schema_version=SCHEMA_VERSION,
        price_rub=1.0,
        car=WARMUP_CAR,
    )
    return encode_records([record] * count)


def test_answers_are_logged_with_ids_rows_prices_and_cars(
    make_client: MakeClient, model_bundle: Path, tmp_path: Path, car_payload: dict[str, Any]
) -> None:
    """Each answered row of /predict and /predict/batch is one record, flushed at shutdown."""
    other = {**car_payload, "mileage": 5}
    with make_client(model_bundle, prediction_log_dir=str(tmp_path)) as client:
        single = client.post("/predict", json=car_payload, headers={REQUEST_ID_HEADER: "abc-1"})
        batch = client.post("/predict/batch", json={"cars": [other, car_payload, other]})
        rejected = client.post("/predict", json={**car_payload, "mileage": -1})
    assert rejected.status_code == 422
    assert single.headers[REQUEST_ID_HEADER] == "abc-1"
    batch_id = batch.headers[REQUEST_ID_HEADER]
    assert len(batch_id) == 32
    assert int(batch_id, 16) >= 0
    assert not list(tmp_path.glob(f"*{OPEN_SUFFIX}"))  # closed at shutdown
    read = read_prediction_log(tmp_path)
    assert read.skipped == {}
    assert [(r.request_id, r.row) for r in read.records] == [
        ("abc-1", 0),
        (batch_id, 0),
        (batch_id, 1),
        (batch_id, 2),
    ]
    prices = [single.json()["price_rub"], *batch.json()["prices_rub"]]
    assert [r.price_rub for r in read.records] == prices
    cars = [car_payload, other, car_payload, other]
    assert [msgspec.to_builtins(r.car) for r in read.records] == cars
    assert {(r.model_version, r.schema_version) for r in read.records} == {("1", SCHEMA_VERSION)}


def test_a_client_request_id_is_kept_only_when_valid(
    make_client: MakeClient, model_bundle: Path, car_payload: dict[str, Any]
) -> None:
    """A valid X-Request-ID is echoed, an invalid one replaced, with the log off too."""
    with make_client(model_bundle) as client:
        ok = client.post("/predict", json=car_payload, headers={REQUEST_ID_HEADER: "a.b:c_d-1"})
        long = client.post("/predict", json=car_payload, headers={REQUEST_ID_HEADER: "x" * 65})
        spaced = client.post("/predict", json=car_payload, headers={REQUEST_ID_HEADER: "a b"})
    assert ok.headers[REQUEST_ID_HEADER] == "a.b:c_d-1"
    for response in (long, spaced):
        assert len(response.headers[REQUEST_ID_HEADER]) == 32


def test_the_buffer_is_bounded_and_overflow_is_counted(tmp_path: Path) -> None:
    """Past PREDICTION_LOG_BUFFER cars, rows are dropped as buffer_full (a batch's tail first)."""
    log, metrics = make_log(tmp_path, prediction_log_buffer=5, prediction_log_flush_s=60.0)

    async def scenario() -> None:
        log.start()
        log.record("a", CARS[:2], [1.0, 2.0], "1")
        log.record("b", CARS[:2], [1.0, 2.0], "1")
        log.record("c", CARS[:3], [1.0, 2.0, 3.0], "1")  # one fits
        log.record("d", CARS[:1], [1.0], "1")  # none fits
        await log.stop()

    asyncio.run(scenario())
    read = read_prediction_log(tmp_path)
    assert [(r.request_id, r.row) for r in read.records] == [
        ("a", 0),
        ("a", 1),
        ("b", 0),
        ("b", 1),
        ("c", 0),
    ]
    assert counts(metrics) == {
        "records": 5,
        "sampled_out": 0,
        BUFFER_FULL: 3,
        WRITE_ERROR: 0,
        SHUTDOWN: 0,
    }


def test_the_buffer_frees_as_it_is_written(tmp_path: Path) -> None:
    """A buffer of 4 carries 20 cars when each write completes before the next request."""
    log, metrics = make_log(tmp_path, prediction_log_buffer=4, prediction_log_flush_s=0.01)

    async def scenario() -> None:
        log.start()
        for index in range(10):
            log.record(f"req{index}", CARS[:2], [1.0, 2.0], "1")
            async with asyncio.timeout(10):
                while counts(metrics)["records"] < 2 * (index + 1):
                    await asyncio.sleep(0.005)
        await log.stop()

    asyncio.run(scenario())
    assert counts(metrics)["records"] == 20
    assert counts(metrics)[BUFFER_FULL] == 0
    assert len(read_prediction_log(tmp_path).records) == 20


def test_an_unwritable_directory_drops_counts_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A log dir that cannot be created loses every car as write_error, logged once only."""
    directory = unwritable_dir(tmp_path)
    log, metrics = make_log(directory, prediction_log_flush_s=0.01)
    with caplog.at_level(logging.ERROR, logger="inference.prediction_log"):
        run_log(log, [CARS[:3]] * 5, pause=0.03)
    assert counts(metrics) == {
        "records": 0,
        "sampled_out": 0,
        BUFFER_FULL: 0,
        WRITE_ERROR: 15,
        SHUTDOWN: 0,
    }
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1, messages
    assert WRITE_ERROR in messages[0]


def test_an_unwritable_directory_is_reported_at_start_before_any_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The writer says at start, with its uid and gids, that it cannot write the log dir."""
    directory = unwritable_dir(tmp_path)
    log, metrics = make_log(directory, prediction_log_flush_s=0.01)
    with caplog.at_level(logging.ERROR, logger="inference.prediction_log"):
        run_log(log, [])
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1, messages
    assert f"{directory}: {WRITE_ERROR}: not writable by uid {os.getuid()}" in messages[0]
    assert counts(metrics)[WRITE_ERROR] == 0  # nothing recorded, nothing lost yet


def test_a_writable_directory_reports_nothing_and_keeps_no_probe(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A writable log dir starts silently and holds no leftover of the writability probe."""
    log, _ = make_log(tmp_path, prediction_log_flush_s=0.01)
    with caplog.at_level(logging.ERROR, logger="inference.prediction_log"):
        run_log(log, [])
    assert caplog.records == []
    assert list(tmp_path.iterdir()) == []


def test_serving_answers_while_the_log_cannot_write(
    make_client: MakeClient, model_bundle: Path, tmp_path: Path, car_payload: dict[str, Any]
) -> None:
    """With an unwritable log dir, every prediction is still answered."""
    settings = {"prediction_log_dir": str(unwritable_dir(tmp_path)), "prediction_log_flush_s": 0.01}
    with make_client(model_bundle, **settings) as client:
        statuses = {client.post("/predict", json=car_payload).status_code for _ in range(20)}
        batch = client.post("/predict/batch", json={"cars": [car_payload] * 3})
        metrics = client.get("/metrics").text
    assert statuses == {200}
    assert batch.status_code == 200
    assert 'carprice_prediction_log_dropped_total{reason="write_error"}' in metrics


def test_sampling_leaves_cars_out_and_counts_them(tmp_path: Path) -> None:
    """PREDICTION_LOG_SAMPLE=0 writes nothing and counts every car as sampled out, not dropped."""
    log, metrics = make_log(tmp_path, prediction_log_sample=0.0)
    run_log(log, [CARS[:3], CARS[:1]])
    assert counts(metrics) == {
        "records": 0,
        "sampled_out": 4,
        BUFFER_FULL: 0,
        WRITE_ERROR: 0,
        SHUTDOWN: 0,
    }
    assert segment_paths(tmp_path) == []


def test_records_after_shutdown_are_counted_as_dropped(tmp_path: Path) -> None:
    """An answer recorded once the writer has stopped is counted as a shutdown drop."""
    log, metrics = make_log(tmp_path)
    run_log(log, [CARS[:2]])
    log.record("late", CARS[:3], [1.0, 2.0, 3.0], "1")
    assert (counts(metrics)["records"], counts(metrics)[SHUTDOWN]) == (2, 3)


def test_segments_rotate_by_size_and_closed_ones_never_change(tmp_path: Path) -> None:
    """Segments hold whole lines up to the size limit; a closed one is read-only and unchanged."""
    line = len(encoded(1))
    writer = SegmentWriter(tmp_path, "1-abcdef", max_bytes=3 * line + 10, max_age_s=3600.0)
    assert writer.write(encoded(7)) == (7, None)
    closed = sorted(tmp_path.glob("*.jsonl"))
    assert [len(lines(path.read_bytes())) for path in closed] == [3, 3]
    snapshot = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in closed}
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o444 for path in closed)
    assert writer.write(encoded(5)) == (5, None)
    writer.close()
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in closed} == snapshot
    names = [path.name for path in segment_paths(tmp_path)]
    assert len(names) == 4
    assert all("-1-abcdef-" in name and not name.endswith(OPEN_SUFFIX) for name in names)
    read = read_prediction_log(tmp_path)
    assert (len(read.records), read.skipped) == (12, {})


def test_a_line_longer_than_a_segment_gets_one_of_its_own(tmp_path: Path) -> None:
    """A record larger than the size limit is written, alone, in a fresh segment."""
    writer = SegmentWriter(tmp_path, "1-abcdef", max_bytes=10, max_age_s=3600.0)
    assert writer.write(encoded(2)) == (2, None)
    writer.close()
    assert [len(lines(p.read_bytes())) for p in segment_paths(tmp_path)] == [1, 1]


def test_segments_rotate_by_age_even_when_idle(tmp_path: Path) -> None:
    """A segment older than PREDICTION_LOG_SEGMENT_SECONDS is closed by the writer task."""
    log, _ = make_log(tmp_path, prediction_log_segment_seconds=0.05, prediction_log_flush_s=0.01)

    async def scenario() -> list[str]:
        log.start()
        log.record("a", CARS[:1], [1.0], "1")
        # Written, then closed by age with no new records: polled rather than slept for a fixed
        # time, so a busy machine that runs the writer late fails only after 10 s.
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            names = [path.name for path in segment_paths(tmp_path)]
            closed = bool(names) and not names[0].endswith(OPEN_SUFFIX)
            if closed or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.02)
        await log.stop()
        return names

    names = asyncio.run(scenario())
    assert len(names) == 1
    assert not names[0].endswith(OPEN_SUFFIX)


def test_a_full_disk_mid_chunk_takes_the_partial_chunk_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC mid-chunk: whole lines are kept, the cut one taken back, then writing resumes."""
    writer = SegmentWriter(tmp_path, "1-abcdef", max_bytes=1_000_000, max_age_s=3600.0)
    assert writer.write(encoded(2)) == (2, None)
    real_write = os.write
    line = len(encoded(1))
    budget = [line + 100]  # bytes the "disk" still takes: one line and a bit

    def full_disk(fd: int, data: Any) -> int:
        if budget[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        taken = real_write(fd, bytes(data[: budget[0]]))
        budget[0] -= taken
        return taken

    monkeypatch.setattr(os, "write", full_disk)
    written, error = writer.write(encoded(3))
    assert written == 1
    assert isinstance(error, OSError)
    assert error.errno == errno.ENOSPC
    monkeypatch.setattr(os, "write", real_write)
    assert writer.write(encoded(1)) == (1, None)
    writer.close()
    read = read_prediction_log(tmp_path)
    assert (len(read.records), read.skipped) == (4, {})
