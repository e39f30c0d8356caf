"""Prometheus metrics of the server, correct with several Granian workers.

The names below are a contract: the monitoring rules and dashboards use them as they are.

In multiprocess mode (`inference.multiprocess`, set up by `car-serve` before any worker imports
prometheus_client) each worker writes its samples to memory-mapped files and `/metrics` merges
all workers' files, so any worker answers for the whole server. Otherwise (tests, a single
process) samples live in the app's own registry.
"""

import bisect
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from inference.multiprocess import MULTIPROC_ENV, multiprocess_dir
from inference.slo import HPA_P95_TARGET_S, LATENCY_THRESHOLD_S

REQUEST_DURATION: Final = "carprice_http_request_duration_seconds"
REQUESTS: Final = "carprice_http_requests_total"
BATCH_ROWS: Final = "carprice_batch_rows"
QUEUE_DEPTH: Final = "carprice_queue_depth"
INFLIGHT: Final = "carprice_inflight_requests"
REJECTED: Final = "carprice_rejected_total"
PREDICTED_PRICE: Final = "carprice_predicted_price_rub"
UNKNOWN_CATEGORY: Final = "carprice_unknown_category_total"
MODEL_INFO: Final = "carprice_model_info"
MODEL_READY: Final = "carprice_model_ready"
MODEL_LOADS: Final = "carprice_model_loads_total"
PREDICTION_LOG_RECORDS: Final = "carprice_prediction_log_records_total"
PREDICTION_LOG_DROPPED: Final = "carprice_prediction_log_dropped_total"
PREDICTION_LOG_SAMPLED_OUT: Final = "carprice_prediction_log_sampled_out_total"
MODEL_CREATED: Final = "carprice_model_created_timestamp_seconds"

#: The request metrics' route template label. Not `endpoint`: the Prometheus Operator gives
#: every PodMonitor target an `endpoint` label (the port's name) and, without honorLabels, renames
#: ours to `exported_endpoint`, so every rule selecting it would find nothing. The labels the
#: Operator owns are listed in tests/monitoring/test_operator_labels.py.
ROUTE_LABEL: Final = "route"


# A 1-2.5-5 series from 0.1 to 250 ms, and two edges from `inference.slo`: the latency SLO's
# threshold (the SLI's recording rules read that bucket) and the HPA's p95 target (at an edge the
# p95 the autoscaler compares with it is exact there, not interpolated inside a bucket).
LATENCY_BUCKETS: Final = tuple(
    sorted(
        {
            *(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
            LATENCY_THRESHOLD_S,
            HPA_P95_TARGET_S,
        }
    )
)
BATCH_ROW_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
PRICE_BUCKETS: Final = (
    100e3, 200e3, 300e3, 500e3, 750e3, 1e6, 1.5e6, 2e6, 3e6, 5e6, 7.5e6, 1e7, 2e7, 5e7,
)  # fmt: skip


class Metrics:
    """The server's metric objects, built once per app."""

    def __init__(self) -> None:
        # Read, never changed here: prometheus_client chose its value storage on import.
        self.multiprocess: bool = getattr(values.ValueClass, "_multiprocess", False)
        if multiprocess_dir() is not None and not self.multiprocess:
            raise RuntimeError(
                f"{MULTIPROC_ENV} was set after prometheus_client was imported: set it before "
                "the process starts (car-serve does) or leave it unset"
            )
        # A private registry: several apps in one process (tests) must not collide.
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.request_duration = Histogram(
            REQUEST_DURATION,
            "HTTP request latency per route.",
            [ROUTE_LABEL],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.requests = Counter(
            REQUESTS,
            "HTTP requests per route and status code.",
            [ROUTE_LABEL, "status"],
            registry=registry,
        )
        self.batch_rows = Histogram(
            BATCH_ROWS,
            "Rows per ONNX Runtime run.",
            buckets=BATCH_ROW_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            QUEUE_DEPTH,
            "Single-car requests waiting for the batcher.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.inflight = Gauge(
            INFLIGHT,
            "Prediction requests being served.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.rejected = Counter(
            REJECTED,
            "Requests rejected with 503 by reason (lagging, queue_full, deadline).",
            ["reason"],
            registry=registry,
        )
        self.predicted_price = Histogram(
            PREDICTED_PRICE,
            "Predicted prices in RUB.",
            buckets=PRICE_BUCKETS,
            registry=registry,
        )
        self.unknown_category = Counter(
            UNKNOWN_CATEGORY,
            "Categorical values absent from the model's vocabulary, per field.",
            ["field"],
            registry=registry,
        )
        # livemax: a version is 1 while any live worker serves it, so during a rolling reload
        # both versions show; a swapped-out version is set to 0.
        self.model_info = Gauge(
            MODEL_INFO,
            "The served model: 1 per served version.",
            ["model_name", "model_version", "schema_version", "sha256"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        # livemin: the server is ready only when every live worker has a warm model.
        self.model_ready = Gauge(
            MODEL_READY,
            "1 when a model is loaded and warm (minimum over workers).",
            registry=registry,
            multiprocess_mode="livemin",
        )
        # livemax: during a rolling reload the newest bundle's time; 0 while no worker knows it,
        # which the age alert leaves alone.
        self.model_created = Gauge(
            MODEL_CREATED,
            "Creation time of the served bundle (its manifest's created_at, else when its "
            "manifest was written), Unix seconds; 0 when unknown.",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.model_loads = Counter(
            MODEL_LOADS,
            "Model bundle loads and reloads by outcome (success, failure).",
            ["outcome"],
            registry=registry,
        )
        # Answered cars = records + dropped + sampled out (+ those still buffered): see
        # inference.prediction_log.
        self.prediction_log_records = Counter(
            PREDICTION_LOG_RECORDS,
            "Answered cars written to the prediction log's segment files.",
            registry=registry,
        )
        self.prediction_log_dropped = Counter(
            PREDICTION_LOG_DROPPED,
            "Answered cars the prediction log lost, by reason (buffer_full, write_error, "
            "shutdown).",
            ["reason"],
            registry=registry,
        )
        self.prediction_log_sampled_out = Counter(
            PREDICTION_LOG_SAMPLED_OUT,
            "Answered cars left out of the prediction log by PREDICTION_LOG_SAMPLE.",
            registry=registry,
        )

    def model_served(self, created_at: str | None, written_s: float | None = None) -> None:
        """Record the served bundle's age: its manifest's `created_at`, else when it was written.

        Args:
            created_at: The manifest's ISO 8601 `created_at`, when the exporter stamped one.
            written_s: When the bundle's manifest file was written (Unix seconds): for a
                published bundle, when the publisher put it in its own directory, which a
                republish never touches. The pipeline's bundles carry no `created_at` (they
                are DVC outputs, the same bytes for the same model), so this is their age.
        """
        if created_at is None:
            self.model_created.set(written_s or 0)
            return
        created = datetime.fromisoformat(created_at)
        # A time without an offset is read as UTC, as the exporters write it.
        self.model_created.set(
            (created if created.tzinfo else created.replace(tzinfo=UTC)).timestamp()
        )

    def observe_run(self, prices: Sequence[float], unknown_categories: dict[str, int]) -> None:
        """Record one model run on requests: its rows, its prices and the unseen categories."""
        self.batch_rows.observe(len(prices))
        observe_all(self.predicted_price, prices)
        for field, count in unknown_categories.items():
            self.unknown_category.labels(field).inc(count)

    # prometheus_client leaves MultiProcessCollector and mark_process_dead unannotated, hence
    # the no-untyped-call ignores below.

    def exposition(self) -> bytes:
        """The text exposition of every metric, merged across workers in multiprocess mode."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def worker_exit(self) -> None:
        """Drop this worker's live gauges so they stop counting once it is gone."""
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def reap_dead_workers(self) -> list[int]:
        """Drop the live gauges of workers that died without `worker_exit` (SIGKILL, OOM).

        Granian respawns such a worker, but the dead one's live gauges would go on being
        merged: its in-flight requests and queue depth counted forever, its readiness too.
        Each worker calls this as it starts, so the replacement cleans up after the dead one.
        Counters and histograms stay: what the dead worker served was served.

        Returns:
            The process ids whose gauges were dropped.
        """
        directory = multiprocess_dir()
        if not self.multiprocess or directory is None:
            return []
        dead = sorted(
            {
                pid
                for path in directory.glob("gauge_live*_*.db")
                if not _alive(pid := int(path.stem.rsplit("_", 1)[1]))
            }
        )
        for pid in dead:
            multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
        return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def observe_all(histogram: Histogram, amounts: Sequence[float]) -> None:
    """`histogram.observe(amount)` for every amount, writing each bucket once, not once per amount.

    A run's prices are observed together: in multiprocess mode every write takes a lock and
    writes to the worker's memory-mapped file, about 2.2 µs per price one by one (2.2 ms of a
    1,000-car batch). The buckets end with the same counts as observing one by one (an amount
    counts in the first bucket whose bound is at least it; a NaN in none); the amounts are
    summed first and added once, so the sum may differ from one-by-one adding in its last bits.
    A single price goes to `observe` itself; the rest is pure Python, as numpy's call overhead
    made a one-car run 4.6 µs slower.

    It writes prometheus_client's own bucket and sum values (`_upper_bounds`, `_buckets`,
    `_sum`: private, unchanged since 0.4; tests/inference/test_metrics.py checks the result
    against `observe`). A histogram without them (another version, a labelled parent) is
    observed one by one, so `observe`'s own errors stand.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if (
        bounds is None
        or buckets is None
        or total is None
        or len(bounds) != len(buckets)
        or len(amounts) < 2  # one price (a lone car's run): `observe` is the cheapest
    ):
        for amount in amounts:
            histogram.observe(amount)
        return
    counts = [0] * len(bounds)
    summed = 0.0
    for amount in amounts:
        summed += amount
        if amount == amount:  # noqa: PLR0124 - false for NaN only, which no bucket counts
            # The first bound >= the amount, as `observe` compares (the last bound is +Inf).
            counts[bisect.bisect_left(bounds, amount)] += 1
    total.inc(summed)
    for bucket, count in zip(buckets, counts, strict=True):
        if count:
            bucket.inc(count)


def metrics_middleware(metrics: Metrics) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware recording latency and status per route template.

    Requests that match no route or method are recorded under the route `unmatched`: their
    paths are the client's choice, and a label per path would let a scan grow the series
    without bound.
    """

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            status = 500

            async def send_with_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            start = time.perf_counter()
            try:
                await app(scope, receive, send_with_status)
            finally:
                route = scope.get("path_template") or "unmatched"
                metrics.request_duration.labels(route).observe(time.perf_counter() - start)
                metrics.requests.labels(route, str(status)).inc()

        return middleware

    return factory
