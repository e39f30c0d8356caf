"""Open-loop load: Poisson arrivals on a precomputed schedule, latency from the scheduled send.

The main generator for latency at a rate; Locust is the second. Locust's users are closed
loops: a user waits for its answer before its timer runs again, so a server that stalls is sent
less, and the stall hides (coordinated omission). Here the arrival times are drawn first
(exponential gaps: a Poisson process), and each request goes out at its time on a free
keep-alive connection, a new one if every connection is busy, so a slow answer never delays the
next arrival. A request's latency runs from its scheduled time to the end of its answer:
queueing anywhere, including in this process, is counted. How late each send left its
schedule (the send lag) is recorded too, so a step this process could not keep up with is seen.

Several request kinds (`Target`: method, path, content type, bodies) share one schedule at the
sum of their rates, each arrival drawn to a kind with probability rate / sum: independent
Poisson processes over the same seconds. A fixed seed gives the same schedule to every server.

Run as `python -m benchmarks.openloop URL --bodies FILE --out FILE floor|ladder …` (`--bodies`:
one request body per line; see `--help`). `benchmarks.run` runs it in its own process (Locust's
gevent patches the run's), pinned to the load-generator core.
"""

import argparse
import asyncio
import json
import random
import re
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import psutil

ARRIVALS: Final = "Poisson (exponential gaps drawn in advance, fixed seed), open loop"
#: /health requests per second beside every ladder step: the framework floor under that load,
#: a small share of any step, so it does not move the server's capacity.
FLOOR_RATE: Final = 10.0
#: A step whose median send left later than this share of its median latency, or whose
#: generator used this much of its core, measured this process as much as the server: it is
#: flagged `generator_limited`.
MAX_LAG_SHARE: Final = 0.25
MAX_LOADGEN_CPU: Final = 0.9
#: Fewest expected arrivals of a step: a low-rate step runs longer than the step time.
MIN_ARRIVALS: Final = 20
REQUEST_TIMEOUT_S: Final = 10.0
#: The event loop's timers wake up to 1 ms late (epoll's resolution); the last 2 ms before a
#: send are spent yielding to other tasks instead, so sends leave on time.
_SPIN_S: Final = 0.002
_LENGTH: Final = re.compile(rb"(?im)^content-length:\s*(\d+)")
_PERCENTILES: Final = (50, 95, 99)


class Target(NamedTuple):
    """One kind of request: its name in the results, method, path, bodies and content type."""

    name: str
    method: str
    path: str
    bodies: Sequence[bytes] = (b"",)
    content_type: str = "application/json"

    def requests(self, host: str) -> list[bytes]:
        """The whole HTTP/1.1 requests, encoded once before the schedule starts."""
        head = f"{self.method} {self.path} HTTP/1.1\r\nHost: {host}\r\n"
        if self.method == "GET":
            return [f"{head}\r\n".encode()]
        head += f"Content-Type: {self.content_type}\r\n"
        return [f"{head}Content-Length: {len(b)}\r\n\r\n".encode() + b for b in self.bodies]


def predict_target(bodies: Sequence[bytes], path: str = "/predict", seed: int = 0) -> Target:
    """One car per request, in a seeded random order of `bodies`."""
    return Target("predict", "POST", path, random.Random(seed).sample(list(bodies), len(bodies)))


def batch_body(cars: Sequence[bytes], size: int, rng: random.Random) -> bytes:
    """A `/predict/batch` body of `size` cars drawn from `cars`."""
    return b'{"cars":[' + b",".join(rng.choices(cars, k=size)) + b"]}"


def batch_target(cars: Sequence[bytes], size: int, count: int = 8, seed: int = 0) -> Target:
    """`count` different `/predict/batch` requests of `size` cars each."""
    rng = random.Random(seed)
    return Target(
        "batch", "POST", "/predict/batch", [batch_body(cars, size, rng) for _ in range(count)]
    )


HEALTH: Final = Target("health", "GET", "/health")


class _Record:
    """What one kind of request did: sends, send lags, latencies, failures, last answer."""

    def __init__(self) -> None:
        self.sent = self.ok = self.failures = 0
        self.lags: list[float] = []
        self.latencies: list[float] = []
        self.last = 0.0

    def summary(self, start: float, seconds: float) -> dict[str, Any]:
        # Achieved: 200 answers over the schedule's length, or until the last answer if later.
        achieved = self.ok / max(seconds, self.last - start)
        latencies, lags = np.array(self.latencies) * 1e3, np.array(self.lags) * 1e3
        mean = float(latencies.mean()) if latencies.size else None

        def pct(values: np.ndarray, p: float) -> float | None:
            return float(np.percentile(values, p)) if values.size else None

        return {
            "requests": self.sent,
            "failures": self.failures,
            "failure_rate": self.failures / max(self.sent, 1),
            "achieved_rps": achieved,
            **{f"p{p}_ms": pct(latencies, p) for p in _PERCENTILES},
            "mean_ms": mean,
            "in_flight_mean": achieved * mean / 1e3 if mean is not None else None,  # Little's law
            "send_lag_p50_ms": pct(lags, 50),
            "send_lag_p99_ms": pct(lags, 99),
        }


class _Client:
    """Keep-alive connections to one server: a free one per request, a new one if none is."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.loop = asyncio.get_running_loop()

    async def exchange(self, request: bytes) -> bool:
        """Send one request and read its answer: whether it was a 200."""
        conn = self.idle.pop() if self.idle else await asyncio.open_connection(self.host, self.port)
        reader, writer = conn
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = _LENGTH.search(head)
            await reader.readexactly(int(length.group(1)) if length else 0)
        except BaseException:  # a timeout or a broken connection: never reuse it
            writer.close()
            raise
        self.idle.append(conn)
        return head[9:12] == b"200"

    async def send(self, record: _Record, request: bytes, due: float) -> None:
        """One request due at `due` (loop time): its send lag, latency from `due`, status."""
        record.lags.append(self.loop.time() - due)
        try:
            ok = await asyncio.wait_for(self.exchange(request), REQUEST_TIMEOUT_S)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):  # a failure, no latency
            record.failures += 1
            return
        record.last = self.loop.time()
        record.latencies.append(record.last - due)
        record.ok += ok
        record.failures += not ok

    async def back_to_back(
        self, record: _Record, requests: list[bytes], start: float, seconds: float
    ) -> None:
        """A closed loop from `start` for `seconds`: each request sent once the last is answered."""
        await asyncio.sleep(max(0.0, start - self.loop.time()))
        while (sent := self.loop.time()) < start + seconds:
            record.sent += 1
            await self.send(record, requests[record.sent % len(requests)], sent)

    def close(self) -> None:
        """Close the idle connections."""
        for _, writer in self.idle:
            writer.close()


async def run_streams(
    url: str,
    streams: Sequence[tuple[Target, float]],
    seconds: float,
    seed: int = 0,
    closed: Target | None = None,
) -> dict[str, Any]:
    """Send Poisson streams (target, requests/s) in one schedule; optionally one closed loop.

    Args:
        url: The server, `http://host:port`.
        streams: Each target with its rate; every arrival is one of them.
        seconds: Length of the schedule.
        seed: Seed of the schedule and of the choice of kind.
        closed: A target sent back to back on one connection for the same seconds (a client
            that waits for each answer: its latency runs from its own send).

    Returns:
        Per target name: requests, failures (non-200 or no answer), achieved rps, latency
        percentiles (ms), mean in flight, send lag; and this process's CPU use in cores.
    """
    split = urllib.parse.urlsplit(url)
    client = _Client(split.hostname or "127.0.0.1", split.port or 80)
    rng, loop = random.Random(seed), asyncio.get_running_loop()
    encoded = {target.name: target.requests(client.host) for target, _ in streams}
    records = {target.name: _Record() for target, _ in streams}
    start = loop.time() + 0.1
    cpu_before, tasks = time.process_time(), []
    if closed is not None:
        records[closed.name] = record = _Record()
        requests = closed.requests(client.host)
        tasks.append(loop.create_task(client.back_to_back(record, requests, start, seconds)))
    total, due = sum(rate for _, rate in streams), start
    names, rates = [target.name for target, _ in streams], [rate for _, rate in streams]
    while total and (due := due + rng.expovariate(total)) < start + seconds:
        record = records[name := rng.choices(names, rates)[0]]
        request = encoded[name][record.sent % len(encoded[name])]
        record.sent += 1
        while (early := due - loop.time()) > 0:
            await asyncio.sleep(early - _SPIN_S if early > _SPIN_S else 0)
        tasks.append(loop.create_task(client.send(record, request, due)))
    await asyncio.sleep(max(0.0, start + seconds - loop.time()))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    client.close()
    return {name: record.summary(start, seconds) for name, record in records.items()} | {
        "seconds": seconds,
        "loadgen_cpu": (time.process_time() - cpu_before) / elapsed,
    }


async def run_schedule(
    url: str, rate: float, seconds: float, single: Target, floor: Target = HEALTH
) -> dict[str, Any]:
    """Single cars and the framework floor at `rate` each, in one schedule.

    The floor (routing, HTTP and the server, no model) at the same rate in the same seconds:
    the ratio of the two kinds' percentiles is what the model and its feeds add.
    """
    figures = await run_streams(url, [(single, rate), (floor, rate)], seconds)
    return figures | {"rate_each": rate, "arrivals": ARRIVALS}


def _cpu_busy() -> float:
    """CPU seconds every process of the machine has used."""
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system + times.irq + times.softirq)


def server_cpu_seconds(pid: int | None) -> float:
    """CPU time the process `pid` and its children have used (0 without a pid)."""
    if pid is None:
        return 0.0
    root = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


async def settle(server_pid: int | None, idle_cores: float = 0.2, limit_s: float = 30.0) -> None:
    """Wait until the server's CPU use falls below `idle_cores` (at most `limit_s`).

    A server without load shedding still works through requests whose clients gave up after
    an overloaded step; the next step would measure that backlog too.
    """
    deadline = time.perf_counter() + limit_s
    while server_pid is not None and time.perf_counter() < deadline:
        before = server_cpu_seconds(server_pid)
        await asyncio.sleep(0.5)
        if server_cpu_seconds(server_pid) - before < 0.5 * idle_cores:
            return


async def step(
    url: str, target: Target, rate: float, seconds: float, *, server_pid: int | None, seed: int = 0
) -> dict[str, Any]:
    """`target` at `rate` with `HEALTH` at `FLOOR_RATE` in the same schedule: its figures.

    The schedule lasts at least long enough for `MIN_ARRIVALS` of `target`. The target's
    figures, plus the CPU (in cores) the server, this process and all others used, the
    floor's percentiles and whether the generator rather than the server was the limit.
    """
    await settle(server_pid)
    cpu, busy, started = server_cpu_seconds(server_pid), _cpu_busy(), time.perf_counter()
    seconds = max(seconds, MIN_ARRIVALS / rate)
    figures = await run_streams(url, [(target, rate), (HEALTH, FLOOR_RATE)], seconds, seed)
    elapsed = time.perf_counter() - started
    server = (server_cpu_seconds(server_pid) - cpu) / elapsed
    result, loadgen = {"offered_rps": rate, **figures[target.name]}, figures["loadgen_cpu"]
    result["seconds"] = seconds
    lag, p50 = result["send_lag_p50_ms"] or 0.0, result["p50_ms"] or 0.0
    return result | {
        "server_cpu_cores": server,
        "loadgen_cpu": loadgen,
        # Other processes meanwhile, in cores: on a shared machine, the co-tenants.
        "others_cpu": (_cpu_busy() - busy) / elapsed - server - loadgen,
        "generator_limited": lag > MAX_LAG_SHARE * p50 or loadgen >= MAX_LOADGEN_CPU,
        "floor": {key: figures[HEALTH.name][key] for key in ("requests", "p50_ms", "p99_ms")},
    }


async def ladder(
    url: str,
    target: Target,
    rates: Sequence[float],
    seconds: float,
    *,
    sustained: Callable[[dict[str, Any]], bool],
    server_pid: int | None = None,
    refine: int = 2,
) -> dict[str, Any]:
    """Steps at `rates` up to the first not sustained, then `refine` bisections below it.

    Returns:
        The steps by offered rate (each with its `sustained` verdict), the max sustained
        rate (highest achieved of a sustained step) and the offered rate of that step.
    """
    steps: list[dict[str, Any]] = []

    async def measure(rate: float) -> bool:
        figures = await step(url, target, rate, seconds, server_pid=server_pid)
        # Achieved against what the schedule sent: a Poisson count is off its mean by about
        # its square root (4 % of 500 arrivals), which is not the server's doing.
        sent = figures["requests"] / figures["seconds"]
        check = {**figures, "rps": figures["achieved_rps"], "offered_rps": sent}
        check["p95_ms"] = figures["p95_ms"] or 0.0
        figures["sustained"] = figures["p95_ms"] is not None and sustained(check)
        steps.append(figures)
        return bool(figures["sustained"])

    for rate in rates:
        if not await measure(rate):
            break
    held = [s["offered_rps"] for s in steps if s["sustained"]]
    failed = [s["offered_rps"] for s in steps if not s["sustained"]]
    if held and failed:
        low, high = max(held), min(failed)
        for _ in range(refine):
            middle = float(round((low + high) / 2))
            if middle in (low, high):
                break
            low, high = (middle, high) if await measure(middle) else (low, middle)
    steps.sort(key=lambda s: s["offered_rps"])
    best = max((s for s in steps if s["sustained"]), key=lambda s: s["achieved_rps"], default={})
    return {
        "steps": steps,
        "max_sustained_rps": best.get("achieved_rps", 0.0),
        "max_sustained_offered_rps": best.get("offered_rps"),
    }


async def batch_vs_single(
    url: str, single: Target, batch: Target, rate: float, seconds: float
) -> dict[str, Any]:
    """Single cars at `rate` (open loop) alone, batches back to back alone, then both at once."""
    alone = await run_streams(url, [(single, rate)], seconds)
    batches = await run_streams(url, [], seconds, closed=batch)
    both = await run_streams(url, [(single, rate)], seconds, closed=batch)
    return {
        "single_rate": rate,
        "singles_alone": alone[single.name],
        "batches_alone": batches[batch.name],
        "with_batches": {"single": both[single.name], "batch": both[batch.name]},
    }


async def plan(args: argparse.Namespace, bodies: list[bytes]) -> dict[str, Any]:
    """What the command line asks for, as one JSON-ready dict."""
    single = predict_target(bodies, args.path)
    single = single._replace(content_type=args.content_type)
    if args.mode == "floor":
        floor = HEALTH._replace(path=args.floor_path)
        return await run_schedule(args.url, args.rate, args.seconds, single, floor)
    from benchmarks.report import load_goals  # the sustained rule's one home

    sustained = load_goals().sustained.holds
    result: dict[str, Any] = {"arrivals": ARRIVALS, "floor_rate": FLOOR_RATE}
    pid = args.server_pid
    found = await ladder(
        args.url,
        single,
        args.rates,
        args.seconds,
        sustained=sustained,
        server_pid=pid,
        refine=args.refine,
    )
    result["ladder"] = found
    result["at"] = [
        await step(args.url, single, rate, args.seconds, server_pid=pid) for rate in args.at
    ]
    capacity = found["max_sustained_rps"]
    result["curve"] = [
        await step(args.url, single, round(share * capacity, 1), args.seconds, server_pid=pid)
        | {"share": share}
        for share in (args.curve if capacity else [])
    ]
    if args.batch_cars:
        batch = batch_target(bodies, args.batch_cars)
        result["batch_vs_single"] = await batch_vs_single(
            args.url, single, batch, args.single_rate, args.seconds
        )
        result["batch_vs_single"]["batch_cars"] = args.batch_cars
    return result


def main(argv: list[str] | None = None) -> int:
    """Run one plan against a server and write its figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.openloop", description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--bodies", type=Path, required=True, help="one request body per line")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=10.0, help="per step")
    parser.add_argument("--path", default="/predict", help="single-car path")
    parser.add_argument("--content-type", default="application/json")
    parser.add_argument("--floor-path", default=HEALTH.path, help="the framework floor's path")
    parser.add_argument("--server-pid", type=int, help="its CPU time is read per step")
    modes = parser.add_subparsers(dest="mode", required=True)
    floor = modes.add_parser("floor", help="single cars and the floor at one rate each")
    floor.add_argument("--rate", type=float, default=50.0, help="req/s of each kind")
    steps = modes.add_parser("ladder", help="a rate ladder, then fixed steps")
    steps.add_argument("--rates", type=float, nargs="+", required=True)
    steps.add_argument("--refine", type=int, default=2, help="bisections after the ladder")
    steps.add_argument("--at", type=float, nargs="*", default=[], help="steps at these rates")
    steps.add_argument("--curve", type=float, nargs="*", default=[], help="shares of capacity")
    steps.add_argument("--batch-cars", type=int, help="run the batch-vs-single scenario")
    steps.add_argument("--single-rate", type=float, default=50.0, help="in that scenario")
    args = parser.parse_args(argv)
    bodies = args.bodies.read_bytes().splitlines()
    figures = asyncio.run(plan(args, bodies))
    args.out.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
