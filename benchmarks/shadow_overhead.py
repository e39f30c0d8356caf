"""Shadow on vs off: the champion's latency at half of capacity, one open-loop schedule.

Starts `car-serve` (one worker, pinned to one core; this generator on another) twice on a
serving folder that holds a challenger (`car-train stage`): `SHADOW_SHARE=0`, and
`SHADOW_SHARE=1` (every answer scored again). Finds the capacity with shadow off (the highest
ladder step answered in full with p95 at most `MAX_P95_MS`), then sends the same seeded
Poisson schedule at half of it to each in turn. Also reads the worker's resident memory with
the challenger held and without one, and how much shadow work the shadowing server did and
dropped. Prints one JSON object.

    python -m benchmarks.shadow_overhead SERVING_FOLDER --bodies BODIES_JSONL
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.openloop import predict_target, run_streams
from benchmarks.servers import LOADGEN_CORE, SERVER_CORE, free_port

LADDER = (100, 200, 400, 600, 800, 1000, 1500, 2000, 3000)
#: A step counts as sustained when answered in full at this p95 or less.
MAX_P95_MS = 100.0


def start(folder: Path, **settings: str) -> tuple[subprocess.Popen[bytes], str]:
    """car-serve on `folder`, one worker on SERVER_CORE, ready."""
    port = free_port()
    env = {**os.environ, "MODEL_DIR": str(folder), "PORT": str(port), "WORKERS": "1"}
    env |= {"RELOAD_POLL_S": "0", "LOG_LEVEL": "warning", **settings}
    car_serve = Path(sys.executable).with_name("car-serve")
    command = ["taskset", "-c", str(SERVER_CORE), str(car_serve)]
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=1) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("car-serve did not become ready")


def worker_rss_mb(process: subprocess.Popen[bytes]) -> float:
    """The resident memory of the Granian worker (the main process's child), MB."""
    children = psutil.Process(process.pid).children(recursive=True)
    return max(child.memory_info().rss for child in children) / 2**20


def shadow_counts(url: str) -> dict[str, float]:
    """The shadowing server's answers, shadow runs and shadow work dropped, from /metrics.

    Without them the p95 ratio could hide a shadow that kept up by dropping its work.
    """
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    counts = {"answered": 0.0, "shadow_runs": 0.0, "shadow_dropped": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "carprice_http_requests_total" and labels.get("status") == "200":
                counts["answered"] += sample.value if labels.get("route") == "/predict" else 0.0
            elif sample.name == "carprice_model_runs_total" and labels.get("role") == "shadow":
                counts["shadow_runs"] += sample.value
            elif sample.name == "carprice_shadow_dropped_total":
                counts["shadow_dropped"] += sample.value
    return counts


def measure(folder: Path, bodies: list[bytes], seconds: float, rounds: int) -> dict[str, Any]:
    """Capacity with shadow off, then both servers in turn at half of it on one schedule.

    Both servers run side by side on the same core (the idle one costs next to nothing) and
    take turns, `rounds` times each: a machine whose load drifts moves both alike.
    """
    os.sched_setaffinity(0, {LOADGEN_CORE})
    target = predict_target(bodies)
    results: dict[str, Any] = {}
    servers = {
        name: start(folder, SHADOW_SHARE=share) for name, share in (("off", "0"), ("on", "1"))
    }
    try:
        capacity, step = 0.0, None
        for rate in LADDER:
            step = asyncio.run(run_streams(servers["off"][1], [(target, rate)], 3.0))["predict"]
            if (
                step["failures"]
                or step["achieved_rps"] < 0.95 * rate
                or step["p95_ms"] > MAX_P95_MS
            ):
                break
            capacity = rate
        if not capacity:
            raise RuntimeError(f"not even {LADDER[0]} requests/s sustained: {step}")
        results |= {"capacity_rps": capacity, "half_rps": capacity / 2}
        for name in ("off", "on") * rounds:
            run = asyncio.run(run_streams(servers[name][1], [(target, capacity / 2)], seconds))
            results.setdefault(name, []).append(run["predict"])
        results["rss_mb_two_sessions"] = worker_rss_mb(servers["off"][0])
        results["shadow_on_counts"] = shadow_counts(servers["on"][1])
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait()
    challenger = folder / "challenger"
    held = challenger.read_bytes()
    challenger.unlink()
    try:
        alone, _ = start(folder)
        results["rss_mb_one_session"] = worker_rss_mb(alone)
        alone.terminate()
        alone.wait()
    finally:
        challenger.write_bytes(held)
    p95 = {
        name: statistics.median(run["p95_ms"] for run in results[name]) for name in ("off", "on")
    }
    results |= {"median_p95_ms": p95, "p95_ratio_on_off": p95["on"] / p95["off"]}
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print its figures as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.shadow_overhead", description=__doc__
    )
    parser.add_argument("folder", type=Path, help="a serving folder with current and challenger")
    parser.add_argument("--bodies", type=Path, required=True, help="one request body per line")
    parser.add_argument("--seconds", type=float, default=10.0, help="per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, in turn")
    args = parser.parse_args(argv)
    bodies = [line for line in args.bodies.read_bytes().splitlines() if line.strip()]
    print(json.dumps(measure(args.folder, bodies, args.seconds, args.rounds), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
