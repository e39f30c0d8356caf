"""The prediction log's writer: each answered car kept in memory, written off the request path.

On the request path `PredictionLog.record` only appends one tuple per request to a bounded
buffer (no I/O, no encoding). A background task of the worker wakes every
`PREDICTION_LOG_FLUSH_S` (sooner when half the buffer fills), encodes the buffered cars as
`shared_schema.prediction_log` records on the loop in small chunks, and hands the bytes to a
thread that appends them to this worker's open segment (`segment_writer`). Each worker writes its
own files, so no process waits on another.

Nothing the log does fails or slows a request: a full buffer, a full disk or an unwritable
directory drops records, counts them in `carprice_prediction_log_dropped_total{reason}` and is
logged once per reason. At any moment, answered cars = `carprice_prediction_log_records_total`
+ dropped + `carprice_prediction_log_sampled_out_total` + those still buffered (at most
`PREDICTION_LOG_BUFFER`, which is also the most a crash of the worker loses).
"""

import asyncio
import contextlib
import logging
import os
import random
import re
import secrets
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from litestar import Request

from inference.metrics import Metrics
from inference.model import Prediction
from inference.segment_writer import SegmentWriter
from inference.settings import Settings
from shared_schema import FIELD_NAMES, SCHEMA_VERSION, Car
from shared_schema.prediction_log import (
    LOG_FORMAT,
    REQUEST_ID_HEADER,
    REQUEST_ID_PATTERN,
    PredictionRecord,
    encode_records,
)
from shared_schema.rating import Rating

logger = logging.getLogger(__name__)

#: Drop reasons (label values of `carprice_prediction_log_dropped_total`).
BUFFER_FULL: Final = "buffer_full"
WRITE_ERROR: Final = "write_error"
SHUTDOWN: Final = "shutdown"

# Records encoded per turn of the event loop. Encoding costs ~3 µs a record on the test VM, so a
# chunk holds the loop for ~0.4 ms; a thread would not help, msgspec keeps the GIL while it
# encodes and the loop could then wait a whole switch interval (5 ms) for it.
_ENCODE_CHUNK: Final = 128

_request_id: Final = re.compile(REQUEST_ID_PATTERN)

#: One request's answer as the request path leaves it: time, request id, cars, prices, version,
#: the asking prices' ratings (None when no car had one), and the challenger's shadow
#: prediction when it was shadowed.
_Answered = tuple[
    float,
    str,
    Sequence[Car],
    Sequence[float],
    str,
    Sequence[Rating | None] | None,
    Prediction | None,
]


def request_id(request: Request[Any, Any, Any]) -> str:
    """The request's id: the client's `X-Request-ID` if valid, else 32 random hex digits."""
    offered = request.headers.get(REQUEST_ID_HEADER)
    if offered is not None and _request_id.fullmatch(offered):
        return offered
    return os.urandom(16).hex()


class PredictionLog:
    """One worker's prediction log: a bounded buffer on the request path, a writer task behind.

    Args:
        settings: The `prediction_log_*` settings; `prediction_log_dir` must be set.
        metrics: Where written, dropped and sampled-out cars are counted.
    """

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        if settings.prediction_log_dir is None:
            raise ValueError("the prediction log needs PREDICTION_LOG_DIR")
        self._metrics = metrics
        self._sample = settings.prediction_log_sample
        self._capacity = settings.prediction_log_buffer
        self._high_water = max(1, settings.prediction_log_buffer // 2)
        self._interval_s = settings.prediction_log_flush_s
        worker = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.writer = SegmentWriter(
            Path(settings.prediction_log_dir),
            worker,
            max_bytes=settings.prediction_log_segment_bytes,
            max_age_s=settings.prediction_log_segment_seconds,
        )
        self._buffer: list[_Answered] = []
        self._held = 0  # cars appended and not yet written or dropped: the buffer's bound
        self._sampled_out = 0  # counted on the request path, published by the writer task
        self._dropped: dict[str, int] = {BUFFER_FULL: 0}
        self._reported: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        for reason in (BUFFER_FULL, WRITE_ERROR, SHUTDOWN):
            metrics.prediction_log_dropped.labels(reason)  # exposed as 0 from the start

    def record(
        self,
        request_id: str,
        cars: Sequence[Car],
        prices: Sequence[float],
        version: str,
        *,
        ratings: Sequence[Rating | None] | None = None,
        shadow: Prediction | None = None,
    ) -> None:
        """Keep one request's answered cars for the log: O(1), no I/O, never raises.

        `ratings`: each car's asking-price rating (`inference.rating`), None when none was rated.
        `shadow` is the challenger's prediction for the same cars, when it was shadowed.
        """
        count = len(cars)
        if self._sample < 1.0 and random.random() >= self._sample:  # noqa: S311 - not crypto
            self._sampled_out += count
            return
        if self._closed:
            self._metrics.prediction_log_dropped.labels(SHUTDOWN).inc(count)
            return
        room = self._capacity - self._held
        if count > room:
            self._dropped[BUFFER_FULL] += count - max(room, 0)
            if room <= 0:
                return
            cars, prices, count = cars[:room], prices[:room], room
            ratings = None if ratings is None else ratings[:room]
        self._buffer.append((time.time(), request_id, cars, prices, version, ratings, shadow))
        self._held += count
        if self._held >= self._high_water:
            self._wake.set()

    def start(self) -> None:
        """Start the writer task on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="prediction-log")

    async def stop(self) -> None:
        """Write what is buffered, close the open segment and end the writer task."""
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        await self._task
        self._task = None

    async def _run(self) -> None:
        # Said at start, not at the first flush: on a ReadWriteMany volume whose CSI driver
        # ignores the pod's fsGroup (the default fsGroupPolicy, ReadWriteOnceWithFSType), the
        # directory may belong to another user, and every record would be dropped unseen until
        # traffic came. Drops are still counted per record as they happen.
        problem = await asyncio.to_thread(self._unwritable)
        if problem is not None:
            self._report(WRITE_ERROR, problem)
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await self._wake.wait()
            self._wake.clear()
            await self._flush()
        await self._flush()
        self._closed = True
        # Appended while the last flush ran: nobody will write them now.
        if self._held:
            self._drop(SHUTDOWN, self._held)
            self._report(SHUTDOWN, "answered while the server was stopping")
        self._publish()
        try:
            await asyncio.to_thread(self.writer.close)
        except OSError as error:
            self._report("close", f"cannot close the open segment, it stays .open: {error}")

    def _unwritable(self) -> str | None:
        """Why this process cannot create files in the log directory, or None if it can."""
        directory = self.writer.directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".writable-", dir=directory)
            os.close(fd)
            Path(probe).unlink()
        except OSError as error:
            return (
                f"not writable by uid {os.getuid()} gid {os.getgid()} "
                f"(groups {os.getgroups()}), every record will be dropped: {error}"
            )
        return None

    async def _flush(self) -> None:
        entries, self._buffer = self._buffer, []
        count = sum(len(cars) for _, _, cars, _, _, _, _ in entries)
        written = 0
        try:
            if entries:
                data = await self._encode(entries)
                written, error = await asyncio.to_thread(self.writer.write, data)
                self._metrics.prediction_log_records.inc(written)
                if error is not None:
                    self._drop(WRITE_ERROR, count - written)
                    self._report(WRITE_ERROR, f"cannot write a segment: {error}")
            elif self.writer.due():  # close an idle segment by age
                await asyncio.to_thread(self.writer.close)
        except Exception as error:  # the log must never take the writer task down
            self._drop(WRITE_ERROR, count - written)
            logger.exception("prediction log: unexpected error writing %d records", count)
            self._report(WRITE_ERROR, f"unexpected {error!r}")
        finally:
            self._held -= count
            self._publish()

    async def _encode(self, entries: list[_Answered]) -> bytes:
        parts: list[bytes] = []
        records: list[PredictionRecord] = []
        for answered_at, request_id, cars, prices, version, ratings, shadow in entries:
            ts = datetime.fromtimestamp(answered_at, UTC)
            shadow_version = None if shadow is None else shadow.version
            for row, (car, price) in enumerate(zip(cars, prices, strict=True)):
                asking_price = getattr(car, "asking_price_rub", None)
                records.append(
                    PredictionRecord(
                        log_format=LOG_FORMAT,
                        ts=ts,
                        request_id=request_id,
                        row=row,
                        model_version=version,
                        schema_version=SCHEMA_VERSION,
                        price_rub=price,
                        car=_bare(car),
                        asking_price_rub=asking_price,
                        rating=None if ratings is None else ratings[row],
                        challenger_version=shadow_version,
                        challenger_price_rub=None if shadow is None else shadow.prices[row],
                    )
                )
                if len(records) == _ENCODE_CHUNK:
                    parts.append(encode_records(records))
                    records = []
                    await asyncio.sleep(0)  # let requests run between chunks
        parts.append(encode_records(records))
        return b"".join(parts)

    def _drop(self, reason: str, count: int) -> None:
        if count > 0:
            self._dropped[reason] = self._dropped.get(reason, 0) + count

    def _publish(self) -> None:
        """Move the counts kept on the request path into Prometheus."""
        if self._sampled_out:
            self._metrics.prediction_log_sampled_out.inc(self._sampled_out)
            self._sampled_out = 0
        for reason, count in self._dropped.items():
            if count:
                self._metrics.prediction_log_dropped.labels(reason).inc(count)
                self._dropped[reason] = 0
                if reason == BUFFER_FULL:
                    self._report(reason, f"more than {self._capacity} cars waiting to be written")

    def _report(self, reason: str, why: str) -> None:
        # Once per reason and worker: a full disk must not turn into a log line per request.
        if reason not in self._reported:
            self._reported.add(reason)
            logger.error(
                "prediction log in %s: %s: %s (drops are counted in "
                "carprice_prediction_log_dropped_total; logged once per worker)",
                self.writer.directory,
                reason,
                why,
            )


def _bare(car: Car) -> Car:
    """The `Car` part of a decoded listing: a record's `car` holds the model's fields only.

    About 2 µs a car (the record's encoding itself is about 0.5 µs), in the writer task: a
    listing encoded as it is would put `asking_price_rub` inside `car`, which readers refuse.
    """
    if type(car) is Car:
        return car
    return Car(**{name: getattr(car, name) for name in FIELD_NAMES})
