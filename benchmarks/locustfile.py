"""Locust scenarios for `/predict` and `/predict/batch`, configured by environment variables.

Run headless by `benchmarks.run` (or by hand, see the README). The payloads are real held-out
cars that the runner writes to a temporary JSON file at run time (`BENCH_PAYLOADS`); bodies
are encoded once at start so the load generator spends its one core on HTTP, not on JSON.

Variables:
    BENCH_PAYLOADS: JSON file with a list of cars (required).
    BENCH_USER_RATE: Requests per second per user (`constant_throughput`); 0 = no wait.
    BENCH_BATCH_SIZE: Cars per `/predict/batch` request for `BatchUser`.
    BENCH_LATENCIES: Where to write exact latency percentiles of the measured window (JSON).

Locust's own CSV rounds response times to whole milliseconds, too coarse for a server that
answers in one; the exact percentiles are kept here over the requests made after every user
has spawned (the same window Locust's `--reset-stats` keeps).
"""

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from locust import FastHttpUser, constant, constant_throughput, events, task

_HEADERS = {"Content-Type": "application/json"}
_BATCH_BODIES = 32


def _load_cars() -> list[dict[str, Any]]:
    path = os.environ.get("BENCH_PAYLOADS")
    if not path:
        raise RuntimeError("set BENCH_PAYLOADS to a JSON file with a list of cars")
    cars: list[dict[str, Any]] = json.loads(Path(path).read_text(encoding="utf-8"))
    return cars


_CARS = _load_cars()
_RATE = float(os.environ.get("BENCH_USER_RATE", "0"))
_BATCH_SIZE = int(os.environ.get("BENCH_BATCH_SIZE", "100"))
_rng = random.Random(0)
_SINGLE = [json.dumps(car, ensure_ascii=False).encode() for car in _CARS]


def _batch_bodies(size: int) -> list[bytes]:
    return [
        json.dumps({"cars": _rng.sample(_CARS, size)}, ensure_ascii=False).encode()
        for _ in range(_BATCH_BODIES)
    ]


_BATCH = _batch_bodies(_BATCH_SIZE)
_MIXED_SMALL = _batch_bodies(10)


def _wait_time() -> Any:
    return constant_throughput(_RATE) if _RATE > 0 else constant(0)


class _Window:
    """Latencies of successful requests after spawning completed, until the test stops."""

    def __init__(self) -> None:
        self.open = False
        self.started = 0.0
        self.stopped = 0.0
        self.started_epoch = 0.0
        self.cpu_started = 0.0
        self.latencies_ms: list[float] = []
        self.failures = 0


_window = _Window()


@events.spawning_complete.add_listener
def _open_window(**_: Any) -> None:
    _window.open = True
    _window.started = time.perf_counter()
    _window.started_epoch = time.time()
    _window.cpu_started = time.process_time()


@events.request.add_listener
def _record(response_time: float, exception: Exception | None, **_: Any) -> None:
    if not _window.open:
        return
    if exception is None:
        _window.latencies_ms.append(response_time)
    else:
        _window.failures += 1


@events.test_stop.add_listener
def _write_latencies(**_: Any) -> None:
    _window.open = False
    _window.stopped = time.perf_counter()
    out = os.environ.get("BENCH_LATENCIES")
    if not out:
        return
    latencies = np.asarray(_window.latencies_ms or [float("nan")])
    seconds = max(_window.stopped - _window.started, 1e-9)
    summary = {
        "requests": len(_window.latencies_ms),
        "failures": _window.failures,
        "seconds": seconds,
        "rps": len(_window.latencies_ms) / seconds,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "mean_ms": float(np.mean(latencies)),
        # The window in wall-clock time, for the runner's server CPU samples, and the share of
        # its own core the load generator used in it.
        "window_epoch": [_window.started_epoch, _window.started_epoch + seconds],
        "loadgen_cpu": (time.process_time() - _window.cpu_started) / seconds,
    }
    Path(out).write_text(json.dumps(summary), encoding="utf-8")


class PredictUser(FastHttpUser):
    """Scenario (a): one car per `/predict` request."""

    wait_time = _wait_time()

    @task
    def predict(self) -> None:
        self.client.post("/predict", data=random.choice(_SINGLE), headers=_HEADERS)


class BatchUser(FastHttpUser):
    """Scenario (b): `BENCH_BATCH_SIZE` cars per `/predict/batch` request."""

    wait_time = _wait_time()

    @task
    def predict_batch(self) -> None:
        self.client.post("/predict/batch", data=random.choice(_BATCH), headers=_HEADERS)


class MixedUser(FastHttpUser):
    """Scenario (c): mostly single cars, some small and some 100-car batches, readiness probes.

    The weights follow a marketplace's traffic: a price per listing view, a small batch per
    search page, an occasional bulk re-pricing, and the orchestrator's probe.
    """

    wait_time = _wait_time()

    @task(90)
    def predict(self) -> None:
        self.client.post("/predict", data=random.choice(_SINGLE), headers=_HEADERS)

    @task(7)
    def search_page(self) -> None:
        self.client.post(
            "/predict/batch", data=random.choice(_MIXED_SMALL), headers=_HEADERS, name="batch10"
        )

    @task(1)
    def bulk(self) -> None:
        self.client.post(
            "/predict/batch", data=random.choice(_BATCH), headers=_HEADERS, name="batch100"
        )

    @task(2)
    def ready(self) -> None:
        self.client.get("/ready")
