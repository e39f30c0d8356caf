"""1,000-car batches, ours against the baseline server, in interleaved rounds.

`make bench` measures each server's `/predict/batch` throughput once, in its own stage of its
own run: three runs on one day gave ours 42,140, 45,125 and 38,543 rows/s with no change to
that path, so one run cannot tell a 10 % change, nor say on which side of a 3× goal the ratio
to the baseline lies. This starts both servers side by side on the server core (the idle one
costs next to nothing), as `make bench` starts them (ours from its image's environment, one
worker, micro-batching on; the baseline under uvicorn), and each round sends each of them, in
an order rotated per round, the same back-to-back 1,000-car requests from `BATCH_USERS`
connections (as `make bench`'s batch stage) for `--seconds`. It writes (`--out`, JSON and
Markdown) each server's rows/s per round, their medians and ranges, and the per-round ratio of
ours to the baseline: a ratio is settled when every round stays on one side of it.

    python -m benchmarks.batch_ab --rounds 5 --out benchmarks/results/batch/DATE-vm
"""

import argparse
import http.client
import os
import platform
import random
import statistics
import tempfile
import threading
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from benchmarks.champion import Champion, held_out_rows, request_bodies, resolve
from benchmarks.goals import load_goals
from benchmarks.openloop import BATCH_USERS, batch_body
from benchmarks.pair import write_pair
from benchmarks.servers import LOADGEN_CORE, SERVER_CORE, RunningServer, free_port, server_specs

#: Cars per request, as `make bench`'s goal figure ("HTTP 1,000-car batch rows/s").
CARS: Final = 1000
#: Different request bodies, drawn from the held-out cars (as `make bench` draws them).
BODIES: Final = 32
#: The servers compared: ours first in the results, the baseline its denominator.
SERVERS: Final = ("ours", "baseline")
RESULTS: Final = Path(__file__).with_name("results") / "batch"
#: The figure `make bench`'s goal reads (`figures.figures` computes it from these rounds); the
#: report counts the rounds that reach that goal's target (`Goals.target_of`).
RATIO_FIGURE: Final = "ours.batch_interleaved.median_ratio_to_baseline"


def post_back_to_back(
    url: str, bodies: list[bytes], *, connections: int, seconds: float, seed: int = 0
) -> dict[str, Any]:
    """POST `bodies` to `url` from `connections` keep-alive connections for `seconds`.

    Each connection sends its next body as soon as the last is answered (a closed loop, as
    Locust's batch users). Only requests sent and answered within the window count. Under
    `make bench` the process has imported Locust, which gevent-patches threads and sockets: the
    connections are then greenlets, alone they are OS threads (the same requests either way;
    the generator used at most 0.04 of its core in both).

    Returns:
        The window's seconds, requests answered 200 per second, every status seen (0: the
        connection failed) and this process's CPU share of the window.
    """
    parts = urlsplit(url)
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + seconds
    cpu_before = time.process_time()

    def connection(index: int) -> None:
        rng = random.Random(seed * 1_000 + index)
        client = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        try:
            while time.perf_counter() < deadline:
                try:
                    client.request(
                        "POST", parts.path, rng.choice(bodies), {"Content-Type": "application/json"}
                    )
                    response = client.getresponse()
                    response.read()
                    status = response.status
                except (OSError, http.client.HTTPException):
                    client.close()  # reconnects on the next request
                    status = 0
                if time.perf_counter() <= deadline:
                    with lock:
                        statuses[status] += 1
        finally:
            client.close()

    threads = [threading.Thread(target=connection, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # The window counted: answers after the deadline are left out, so their time is too (the
    # slower server's last answers come later, and would lower its rate, not ours).
    window = deadline - started
    return {
        "seconds": window,
        "rps": statuses[200] / window,
        "statuses": {str(code): count for code, count in sorted(statuses.items())},
        "loadgen_cpu": (time.process_time() - cpu_before) / window,
    }


def measure(
    servers: dict[str, str], bodies: list[bytes], *, rounds: int, seconds: float, cars: int
) -> dict[str, list[dict[str, Any]]]:
    """Every server, `rounds` times in rotated order: its window's figures and rows/s.

    Each server first gets one uncounted second of the same requests (its first calls).
    """
    names = list(servers)
    for name in names:
        post_back_to_back(f"{servers[name]}/predict/batch", bodies, connections=1, seconds=1.0)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_ in range(rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            figures = post_back_to_back(
                f"{servers[name]}/predict/batch",
                bodies,
                connections=BATCH_USERS,
                seconds=seconds,
                seed=round_,
            )
            runs[name].append({"round": round_, "rows_per_s": figures["rps"] * cars} | figures)
    return runs


def interleaved(
    champion: Champion, cars: list[bytes], *, rounds: int, seconds: float, log_dir: Path
) -> dict[str, Any]:
    """Start ours and the baseline side by side, run the rounds, stop them: the results.

    The caller runs on the generator's core (`LOADGEN_CORE`); the servers are pinned to the
    server core. `cars` are single-car request bodies; the 1,000-car bodies are drawn from them.

    Raises:
        ValueError: No training pipeline (the baseline serves it), or a server answered
            something other than 200 (see `summary`).
    """
    if champion.pipeline_dir is None:
        raise ValueError("the baseline server needs the training pipeline: none was given")
    rng = random.Random(0)
    bodies = [batch_body(cars, CARS, rng) for _ in range(BODIES)]
    log_dir.mkdir(parents=True, exist_ok=True)
    running: dict[str, RunningServer] = {}
    # Every spec before any server starts: `server_specs` re-syncs ours' environment.
    ports = {name: free_port() for name in SERVERS}
    specs = {
        name: next(
            spec
            for spec in server_specs(champion, ports[name], log_dir / "prediction-log")
            if spec.name == name
        )
        for name in SERVERS
    }
    try:
        for name in SERVERS:
            running[name] = RunningServer(specs[name], ports[name], log_dir / f"{name}.log")
        urls = {name: server.url for name, server in running.items()}
        runs = measure(urls, bodies, rounds=rounds, seconds=seconds, cars=CARS)
    finally:
        for server in running.values():
            server.stop()
    setup = {
        "seconds": seconds,
        "cars": CARS,
        "connections": BATCH_USERS,
        "server_logs": str(log_dir),
    }
    return setup | {"runs": runs} | summary(runs)


def summary(runs: dict[str, list[dict[str, Any]]], base: str = "baseline") -> dict[str, Any]:
    """Median and range of rows/s per server; per round, each server's rows/s over `base`'s.

    Raises:
        ValueError: A round where a server answered something other than 200 (its rows/s
            would count only what it answered), naming the server, round and statuses.
    """
    for name, done in runs.items():
        for run in done:
            if set(run["statuses"]) - {"200"} or not run["statuses"].get("200"):
                raise ValueError(
                    f"{name}, round {run['round']}: not every request was answered 200, or "
                    f"none was (statuses {run['statuses']}); see its server log"
                )
    rows = {name: [run["rows_per_s"] for run in done] for name, done in runs.items()}
    ratios = {
        name: [mine / theirs for mine, theirs in zip(values, rows[base], strict=True)]
        for name, values in rows.items()
        if name != base
    }
    return {
        "median_rows_per_s": {name: statistics.median(values) for name, values in rows.items()},
        "range_rows_per_s": {name: [min(values), max(values)] for name, values in rows.items()},
        "ratio_to_baseline": ratios,
        "median_ratio": {name: statistics.median(values) for name, values in ratios.items()},
    }


def round_lines(found: dict[str, Any], target: float) -> list[str]:
    """Each server's rows/s per round, and ours over the baseline per round (Markdown).

    `target`: the ratio goal's (`Goals.target_of(RATIO_FIGURE)`), to count the rounds that
    reach it.
    """
    lines = [
        "| server | rows/s: median (range) | per round | generator CPU, max |",
        "|---|---:|---|---:|",
    ]
    for name, done in found["runs"].items():
        low, high = found["range_rows_per_s"][name]
        each = ", ".join(f"{run['rows_per_s']:,.0f}" for run in done)
        loadgen = max(run["loadgen_cpu"] for run in done)
        lines.append(
            f"| {name} | {found['median_rows_per_s'][name]:,.0f} ({low:,.0f}–{high:,.0f}) "
            f"| {each} | {loadgen:.2f} |"
        )
    lines += ["", "Per round, ours over the baseline of the same round:", ""]
    for name, ratios in found["ratio_to_baseline"].items():
        each = ", ".join(f"{value:.2f}" for value in ratios)
        lines.append(
            f"- {name}: {each} (median **{found['median_ratio'][name]:.2f}×**; "
            f"{sum(value >= target for value in ratios)} of {len(ratios)} rounds at "
            f"{target:g}× or more)"
        )
    return lines


def setup_text(found: dict[str, Any]) -> str:
    """How the rounds ran, in a sentence or two."""
    rounds = len(next(iter(found["runs"].values())))
    return (
        f"Both servers (one worker each) on core {SERVER_CORE} side by side, the generator on "
        f"core {LOADGEN_CORE}. "
        f"{rounds} rounds, servers in rotated order, each window {found['seconds']:g} s of "
        f"back-to-back {found['cars']:,}-car requests from {found['connections']} connections "
        "(after one uncounted second each)."
    )


def markdown(results: dict[str, Any], target: float) -> str:
    """The results as a short report, counting the rounds at `target` or more."""
    lines = [
        f"# 1,000-car batches, ours vs the baseline, interleaved: {results['date']} on "
        f"{results['host']}",
        "",
        f"Machine: {results['cpus']} CPUs. {setup_text(results)} Model: {results['model']}. "
        f"Took {results['took_s']:.0f} s.",
        "",
        *round_lines(results, target),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Start both servers, run the rounds, print and write the report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch_ab", description=__doc__)
    parser.add_argument("--bundle", type=Path, help="bundle directory (default: the served one)")
    parser.add_argument("--pipeline", type=Path, help="its training pipeline (the baseline's)")
    parser.add_argument("--rows", type=Path, help="parquet of held-out cars (default: test split)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0, help="each server's window")
    parser.add_argument("--out", type=Path, default=RESULTS / f"{date.today()}-vm")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    champion, rows = resolve(args.bundle, args.pipeline, args.rows)
    if champion.pipeline_dir is None:
        parser.error("the baseline server needs the training pipeline: pass --pipeline")
    os.sched_setaffinity(0, {LOADGEN_CORE})
    started = time.monotonic()
    logs = Path(tempfile.mkdtemp(prefix="batch-ab-"))
    cars = request_bodies(held_out_rows(rows))
    found = interleaved(champion, cars, rounds=args.rounds, seconds=args.seconds, log_dir=logs)
    results: dict[str, Any] = {
        "date": str(date.today()),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "model": champion.label,
        "took_s": time.monotonic() - started,
    } | found
    write_pair(args.out, results, markdown(results, load_goals().target_of(RATIO_FIGURE)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
