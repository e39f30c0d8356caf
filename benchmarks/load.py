"""Run one headless Locust step (pinned to the load-generator core) and read its results."""

import csv
import json
import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from benchmarks.servers import LOADGEN_CORE, RunningServer

LOCUSTFILE: Final = Path(__file__).with_name("locustfile.py")
#: Requests per second each simulated user offers in the fixed-rate ladder. Ten per user
#: leaves each user 100 ms per request, the p95 bound of "sustained" (see `Sustained`).
PER_USER_RATE: Final = 10.0


@dataclass(frozen=True)
class Sustained:
    """When a step counts as sustained: the server kept up with the offered rate.

    Attributes:
        min_achieved: Achieved RPS over offered RPS, at least.
        max_failure_rate: Failed requests over all requests, below.
        max_p95_ms: 95th percentile latency, at most.
    """

    min_achieved: float = 0.95
    max_failure_rate: float = 0.01
    max_p95_ms: float = 100.0

    def holds(self, step: dict[str, Any]) -> bool:
        """Whether a fixed-rate step's results meet every condition."""
        return bool(
            step["rps"] >= self.min_achieved * step["offered_rps"]
            and step["failure_rate"] < self.max_failure_rate
            and step["p95_ms"] <= self.max_p95_ms
        )


def _locust_csv(prefix: Path) -> dict[str, Any]:
    """The "Aggregated" row of Locust's `_stats.csv` (whole-millisecond percentiles)."""
    path = prefix.with_name(prefix.name + "_stats.csv")
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    aggregated = next((row for row in rows if row["Name"] == "Aggregated"), None)
    if aggregated is None:
        return {}

    def number(key: str) -> float:
        value = aggregated.get(key, "")
        return float(value) if value not in ("", "N/A") else math.nan

    return {
        "requests": int(number("Request Count")),
        "failures": int(number("Failure Count")),
        "rps": number("Requests/s"),
        "p50_ms": number("50%"),
        "p95_ms": number("95%"),
        "p99_ms": number("99%"),
        "by_name": {
            row["Name"]: {"requests": int(row["Request Count"]), "rps": float(row["Requests/s"])}
            for row in rows
            if row["Name"] != "Aggregated"
        },
    }


def run_locust(
    server: RunningServer,
    user_class: str,
    *,
    users: int,
    user_rate: float,
    seconds: float,
    payloads: Path,
    out_dir: Path,
    label: str,
    batch_size: int = 100,
) -> dict[str, Any]:
    """One headless Locust run against `server`, with the exact-percentile side channel.

    Args:
        server: The running server (on the loopback interface).
        user_class: `PredictUser`, `BatchUser` or `MixedUser` from the locustfile (several
            separated by spaces share the users).
        users: Simulated users, all spawned within the first second.
        user_rate: Requests per second per user; 0 for no wait (closed loop at saturation).
        seconds: Run time, spawning included (stats are reset once spawning completes).
        payloads: JSON file of cars.
        out_dir: Where Locust's CSVs and logs go.
        label: File-name stem for this run.
        batch_size: Cars per request for `BatchUser`.

    Returns:
        Achieved RPS, exact p50/p95/p99, failures, offered RPS, CPU use of both sides, and
        Locust's own CSV figures under "locust_csv".
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = out_dir / label
    latencies = out_dir / f"{label}_latencies.json"
    env = {
        **os.environ,
        "BENCH_PAYLOADS": str(payloads),
        "BENCH_USER_RATE": str(user_rate),
        "BENCH_BATCH_SIZE": str(batch_size),
        "BENCH_LATENCIES": str(latencies),
    }
    command = [
        "taskset",
        "-c",
        str(LOADGEN_CORE),
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(max(users, 1)),
        "--run-time",
        f"{max(1, round(seconds))}s",
        "--stop-timeout",
        "2",
        "--host",
        server.url,
        "--csv",
        str(prefix),
        "--reset-stats",
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
        *user_class.split(),
    ]
    sampler = _CpuSampler(server)
    sampler.start()
    try:
        with (out_dir / f"{label}.log").open("wb") as log:
            returncode = subprocess.run(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
            ).returncode
    finally:
        sampler.stop()
    if returncode != 0 or not latencies.exists():
        raise RuntimeError(f"locust {label} failed (exit {returncode}); see {out_dir}")
    exact = json.loads(latencies.read_text(encoding="utf-8"))
    requests = exact["requests"] + exact["failures"]
    return {
        "user_class": user_class,
        "users": users,
        "user_rate": user_rate,
        "offered_rps": users * user_rate if user_rate else None,
        "batch_size": batch_size if user_class == "BatchUser" else None,
        "seconds": exact["seconds"],
        "rps": exact["rps"],
        "p50_ms": exact["p50_ms"],
        "p95_ms": exact["p95_ms"],
        "p99_ms": exact["p99_ms"],
        "requests": exact["requests"],
        "failures": exact["failures"],
        "failure_rate": exact["failures"] / requests if requests else 1.0,
        "server_cpu": sampler.share(*exact["window_epoch"]),
        "loadgen_cpu": exact["loadgen_cpu"],
        "locust_csv": _locust_csv(prefix),
    }


class _CpuSampler:
    """Samples the server's CPU seconds every 250 ms, to read its CPU share in a time window."""

    def __init__(self, server: RunningServer) -> None:
        self._server = server
        self._samples: list[tuple[float, float]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.is_set():
            self._samples.append((time.time(), self._server.cpu_seconds()))
            self._done.wait(0.25)

    def start(self) -> None:
        """Start sampling in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Take a last sample and stop."""
        self._done.set()
        self._thread.join()
        self._samples.append((time.time(), self._server.cpu_seconds()))

    def share(self, start: float, stop: float) -> float:
        """CPU seconds per wall second between the samples closest inside [start, stop]."""
        inside = [sample for sample in self._samples if start <= sample[0] <= stop]
        if len(inside) < 2:
            return math.nan
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else math.nan


def ladder_users(rate: float) -> tuple[int, float]:
    """Users and per-user rate that offer `rate` requests per second in total."""
    users = max(1, math.ceil(rate / PER_USER_RATE))
    return users, rate / users
