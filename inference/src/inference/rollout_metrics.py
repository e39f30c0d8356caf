"""The rollout's metrics: every model run and every answer by the version that made it.

Beside `inference.metrics` (whose names stay as they are), built on the same registry. The
label is `model_version` (and `role`): not one of the labels the Prometheus Operator owns
(`endpoint`, `namespace`, `pod`, `container`, `service`, `job`), which it would rename.
"""

import time
from collections.abc import Callable
from typing import Final

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Histogram

from inference.metrics import LATENCY_BUCKETS, Metrics

VERSION_REQUEST_DURATION: Final = "carprice_version_request_duration_seconds"
MODEL_RUNS: Final = "carprice_model_runs_total"
SHADOW_DROPPED: Final = "carprice_shadow_dropped_total"
CHALLENGER_INFO: Final = "carprice_challenger_info"
CHALLENGER_LOADS: Final = "carprice_challenger_loads_total"

#: The response header naming the model version that priced the answer.
MODEL_VERSION_HEADER: Final = "X-Model-Version"
_HEADER_KEY: Final = MODEL_VERSION_HEADER.lower().encode()

#: `role` label values: who a run was for.
CHAMPION: Final = "champion"
CANARY: Final = "canary"
SHADOW: Final = "shadow"
ROLES: Final = (CHAMPION, CANARY, SHADOW)
#: `carprice_shadow_dropped_total{reason}` values.
QUEUE_FULL: Final = "queue_full"
SHUTDOWN: Final = "shutdown"


class RolloutMetrics:
    """The rollout's metric objects, on the registry of the app's `Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        registry = metrics.registry
        self.version_request_duration = Histogram(
            VERSION_REQUEST_DURATION,
            "Latency of answered prediction requests per model version that priced them.",
            ["model_version"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.model_runs = Counter(
            MODEL_RUNS,
            "Model runs per version, role (champion, canary, shadow) and outcome (ok, error).",
            ["model_version", "role", "outcome"],
            registry=registry,
        )
        self.shadow_dropped = Counter(
            SHADOW_DROPPED,
            "Shadow scorings not done: the shadow queue was full, or the worker stopped.",
            ["reason"],
            registry=registry,
        )
        # livemax: 1 while any live worker holds that challenger.
        self.challenger_info = Gauge(
            CHALLENGER_INFO,
            "The challenger held beside the champion: 1 per held version.",
            ["model_version"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.challenger_loads = Counter(
            CHALLENGER_LOADS,
            "Challenger bundle loads by outcome (success, failure); pending ones are not counted.",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("success", "failure"):
            self.challenger_loads.labels(outcome)  # exposed as 0 from the start
        for reason in (QUEUE_FULL, SHUTDOWN):
            self.shadow_dropped.labels(reason)  # exposed as 0 from the start

    def run(self, version: str, role: str, *, ok: bool) -> None:
        """Count one model run."""
        self.model_runs.labels(version, role, "ok" if ok else "error").inc()


def version_middleware(rollout: RolloutMetrics) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware timing every answer that names its model version, by that version."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            start = time.perf_counter()

            async def send_timed(message: Message) -> None:
                if message["type"] == "http.response.start":
                    for key, value in message.get("headers", ()):
                        if key.lower() == _HEADER_KEY:
                            elapsed = time.perf_counter() - start
                            rollout.version_request_duration.labels(value.decode()).observe(elapsed)
                            break
                await send(message)

            await app(scope, receive, send_timed)

        return middleware

    return factory
