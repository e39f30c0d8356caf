"""Admission: a worker whose event loop has fallen behind turns new predictions away at once.

Once the loop is saturated, every request waits behind all the others, and the batch queue's
bound and deadline (`batch_queue`) act too late: they see a request only after it has waited
its turn to be routed, read and decoded. So a monitor measures how late the loop runs a timer
(its lag: how long a request arriving now waits before it is even looked at), and while the lag
stays over `SHED_LAG_MS` (two probes in a row, so one stall is not overload) new prediction
requests are answered 503 with Retry-After before any of that work, from a response encoded
once. What the worker takes on keeps a latency near the
nominal one; the rest fail fast and retry elsewhere or later. Probes, `/metrics` and the ops
routes are never turned away.
"""

import asyncio
from collections.abc import Callable, Collection
from typing import Final

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from inference.background import cancel
from inference.encode import ErrorResponse
from inference.metrics import Metrics

#: The `carprice_rejected_total` reason of a request turned away at admission.
LAGGING: Final = "lagging"
#: How often the monitor measures the lag: a wake-up costs microseconds, 200 a second nothing.
_PROBE_S: Final = 0.005
#: After the last request: time for Granian's I/O threads to write out the last responses.
_FLUSH_S: Final = 0.1


class InFlight:
    """Counts the HTTP requests a worker is serving, so that its shutdown can wait for them.

    On SIGTERM Granian stops accepting and, at once, runs the app's lifespan shutdown; the
    worker process ends when that returns. Waiting here for the requests already taken lets
    them finish (a graceful drain) instead of dying with the process.
    """

    def __init__(self) -> None:
        self.count = 0

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Wrap `app` so that every HTTP request it serves is counted while it runs."""

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            self.count += 1
            try:
                await app(scope, receive, send)
            finally:
                self.count -= 1

        return counted

    async def drained(self, timeout_s: float) -> bool:
        """Wait until no request is in flight, at most `timeout_s`; True if none is left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.count and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(_FLUSH_S)
        return self.count == 0


class LagMonitor:
    """Measures the event loop's lag and says whether it is over the limit."""

    def __init__(self, limit_ms: int) -> None:
        self._limit_s = limit_ms / 1e3
        self.lagging = False
        self._previous_late = False
        self._task: asyncio.Task[None] | None = None

    def observe(self, lag_s: float) -> None:
        """Take one probe's lag: lagging once two probes in a row were over the limit."""
        late = lag_s > self._limit_s
        self.lagging = late and self._previous_late
        self._previous_late = late

    def start(self) -> None:
        """Start measuring on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._measure(), name="lag-monitor")

    async def stop(self) -> None:
        """Stop measuring."""
        await cancel(self._task)
        self._task = None

    async def _measure(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + _PROBE_S
            await asyncio.sleep(_PROBE_S)
            self.observe(loop.time() - due)


def admission_middleware(
    monitor: LagMonitor, metrics: Metrics, paths: Collection[str], retry_after_s: str
) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware answering 503 to requests for `paths` while the loop lags.

    Args:
        monitor: The worker's lag monitor.
        metrics: Where a turned-away request is counted (`carprice_rejected_total`).
        paths: The prediction routes' paths, matched exactly.
        retry_after_s: The Retry-After value of every 503 (`errors.RETRY_AFTER_S`).
    """
    body = msgspec.json.encode(
        ErrorResponse(status_code=503, detail=f"server overloaded ({LAGGING}), retry later")
    )
    start = {
        "type": "http.response.start",
        "status": 503,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", retry_after_s.encode()),
        ],
    }
    rejected = metrics.rejected.labels(LAGGING)

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if monitor.lagging and scope["type"] == ScopeType.HTTP and scope["path"] in paths:
                # The route is known without routing: label the metrics with it.
                scope["path_template"] = scope["path"]
                rejected.inc()
                await send(start)  # type: ignore[arg-type]
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            await app(scope, receive, send)

        return middleware

    return factory
