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

What is sent, at which rates and steps, is `benchmarks.openloop_runs` (its command line).
"""

import asyncio
import random
import re
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

import numpy as np

ARRIVALS: Final = "Poisson (exponential gaps drawn in advance, fixed seed), open loop"
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


#: Connections sending `/predict/batch` requests back to back: Locust's batch stages and the
#: interleaved rounds (`benchmarks.batch_ab`).
BATCH_USERS: Final = 4


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
