"""Replay listings through a running server's `/predict`, one car per request, over HTTP.

How the drift loop is exercised with real traffic: each listing is posted as one car with
`X-Request-ID` set to its `listing_id`, so the server's prediction log can be joined to the
listings' asking prices (the labels) by request id. Standard library only: a keep-alive
`http.client` connection per thread.
"""

import http.client
import json
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import msgspec
import pandas as pd

from shared_schema import FIELD_NAMES
from shared_schema.prediction_log import REQUEST_ID_HEADER
from training.errors import PipelineError

#: Times a request turned away with 503 (the server shedding load) is sent again.
_RETRIES_503: Final = 5
_TIMEOUT_S: Final = 30.0


class ReplaySummary(msgspec.Struct, frozen=True):
    """What the replay sent and how the server answered; every listing is counted once.

    Attributes:
        sent: Listings posted.
        statuses: Final answers by HTTP status (after retries of 503), as strings.
        transport_errors: Listings that got no HTTP answer (connection refused, reset).
        retried_503: 503 answers that were retried.
        first_error: The first non-200 answer's status and body, or transport error.
        seconds: Wall time of the replay.
    """

    sent: int
    statuses: dict[str, int]
    transport_errors: int
    retried_503: int
    first_error: str | None
    seconds: float


def car_bodies(listings: pd.DataFrame) -> list[tuple[str, bytes]]:
    """(listing id, `/predict` body) per listing: its `Car` fields, a missing value as null."""
    cars = listings.loc[:, list(FIELD_NAMES)].astype(object)
    cars = cars.where(cars.notna(), None)
    ids = listings["listing_id"].astype(str)
    return [
        (listing_id, json.dumps(dict(zip(FIELD_NAMES, values, strict=True))).encode())
        for listing_id, values in zip(ids, cars.itertuples(index=False), strict=True)
    ]


def replay(url: str, requests: Sequence[tuple[str, bytes]], threads: int) -> ReplaySummary:
    """Post every (request id, body) to `url`/predict from `threads` connections.

    Raises:
        PipelineError: `url` is not an http(s) URL.
    """
    target = urllib.parse.urlsplit(url)
    if target.scheme not in {"http", "https"} or not target.hostname:
        raise PipelineError(f"replay: {url!r} is not an http(s) URL")
    replayer = _Replayer(target)
    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(replayer.post, requests))
    finally:
        replayer.close()
    return ReplaySummary(
        sent=len(requests),
        statuses=dict(sorted(replayer.statuses.items())),
        transport_errors=replayer.transport_errors,
        retried_503=replayer.retried,
        first_error=replayer.first_error,
        seconds=round(time.perf_counter() - started, 3),
    )


class _Replayer:
    """Posts one listing per call from a keep-alive connection per thread; counts answers."""

    def __init__(self, target: urllib.parse.SplitResult) -> None:
        self._target, self._path = target, target.path.rstrip("/") + "/predict"
        self._lock, self._local = threading.Lock(), threading.local()
        self._opened: list[http.client.HTTPConnection] = []
        self.statuses: Counter[str] = Counter()
        self.transport_errors = self.retried = 0
        self.first_error: str | None = None

    def post(self, item: tuple[str, bytes]) -> None:
        request_id, body = item
        headers = {"Content-Type": "application/json", REQUEST_ID_HEADER: request_id}
        outcome, retried = "transport", 0
        for attempt in range(_RETRIES_503 + 1):
            conn = self._connection()
            try:
                conn.request("POST", self._path, body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._local.conn = None
                outcome, detail = "transport", f"{type(exc).__name__}: {exc}"
                break
            outcome, detail = str(response.status), answer[:300].decode(errors="replace")
            if response.status != 503 or attempt == _RETRIES_503:
                break
            retried += 1
            time.sleep(float(response.getheader("Retry-After") or 1))
        with self._lock:
            self.retried += retried
            if outcome == "transport":
                self.transport_errors += 1
            else:
                self.statuses[outcome] += 1
            if outcome != "200" and self.first_error is None:
                self.first_error = f"{request_id}: {outcome} {detail}"

    def close(self) -> None:
        for conn in self._opened:
            conn.close()

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            https = self._target.scheme == "https"
            factory = http.client.HTTPSConnection if https else http.client.HTTPConnection
            host = self._target.hostname or ""
            conn = self._local.conn = factory(host, self._target.port, timeout=_TIMEOUT_S)
            with self._lock:
                self._opened.append(conn)
        return conn
