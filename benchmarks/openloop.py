"""Open-loop load: Poisson arrivals on a precomputed schedule, latency from the scheduled send.

The second generator beside Locust. Locust's users are closed loops: a user waits for its
answer before its timer runs again, so a server that stalls is sent less, and the stall hides
(coordinated omission); timers that fire together send bursts, not a rate. Here the arrival
times are drawn first (exponential gaps: a Poisson process), and each request goes out at its
time on a free keep-alive connection, a new one if every connection is busy, so a slow answer
never delays the next arrival. A request's latency runs from its scheduled time to the end of
its answer: queueing anywhere, including in this process, is counted.

One schedule at twice the rate, each arrival a coin flip between `POST /predict` (the next of
the real cars, in a seeded random order) and `GET /health` (the framework floor: routing,
HTTP and Granian, no model): two independent Poisson processes at `rate` each, over the same
seconds, so the ratio of their percentiles is what the model and its feeds add.

Run as `python -m benchmarks.openloop URL --rate 50 --seconds 30 --bodies FILE --out FILE`
(`--bodies`: one `/predict` body per line);
`benchmarks.run` runs it pinned to the load-generator core after each server's Locust stages.
"""

import argparse
import asyncio
import json
import random
import re
import sys
import urllib.parse
from pathlib import Path
from typing import Any, Final

import numpy as np

_LENGTH: Final = re.compile(rb"(?im)^content-length:\s*(\d+)")
_PERCENTILES: Final = (50, 95, 99)


async def run_schedule(
    url: str,
    rate: float,
    seconds: float,
    bodies: list[bytes],
    seed: int = 0,
    *,
    path: str = "/predict",
    health_path: str | None = "/health",
) -> dict[str, Any]:
    """Send the schedule; per kind: requests, non-200 answers and latency percentiles (ms).

    `path` takes the bodies (another server's route for one car); without `health_path`
    every arrival is a body, `rate` in all. "elapsed_s" runs from the first scheduled send to
    the last answer: a server that falls behind stretches it.
    """
    target = urllib.parse.urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    rng = random.Random(seed)
    order = rng.sample(bodies, len(bodies))
    health = f"GET {health_path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    requests = {
        "predict": [f"{head}Content-Length: {len(b)}\r\n\r\n".encode() + b for b in order],
        "health": [health],
    }
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    latencies: dict[str, list[float]] = {"predict": [], "health": []}
    failures = {"predict": 0, "health": 0}
    loop = asyncio.get_running_loop()

    async def send(kind: str, request: bytes, due: float) -> None:
        try:
            conn = idle.pop() if idle else await asyncio.open_connection(host, port)
            reader, writer = conn
            writer.write(request)
            answer = await reader.readuntil(b"\r\n\r\n")
            length = _LENGTH.search(answer)
            await reader.readexactly(int(length.group(1)) if length else 0)
        except (OSError, asyncio.IncompleteReadError):  # no answer: a failure, not a latency
            failures[kind] += 1
            return
        latencies[kind].append((loop.time() - due) * 1e3)
        failures[kind] += answer[9:12] != b"200"
        idle.append(conn)

    tasks = []
    start = loop.time() + 0.1
    due, sent = start, {"predict": 0, "health": 0}
    kinds = 2 if health_path else 1
    while (due := due + rng.expovariate(kinds * rate)) < start + seconds:
        kind = "predict" if kinds == 1 or rng.random() < 0.5 else "health"
        request = requests[kind][sent[kind] % len(requests[kind])]
        sent[kind] += 1
        await asyncio.sleep(max(0.0, due - loop.time()))
        tasks.append(asyncio.create_task(send(kind, request, due)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    for _, writer in idle:
        writer.close()
    return {
        kind: {
            "sent": sent[kind],
            "requests": len(values),
            "failures": failures[kind],
            **{
                f"p{p}_ms": float(np.percentile(values, p)) if values else None
                for p in _PERCENTILES
            },
        }
        for kind, values in latencies.items()
        if kind == "predict" or health_path
    } | {
        "rate_each": rate,
        "seconds": seconds,
        "elapsed_s": elapsed,
        "arrivals": "Poisson, one schedule, thinned",
    }


def main(argv: list[str] | None = None) -> int:
    """Run one schedule against a server and write its figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.openloop", description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=50.0, help="req/s of each kind")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--bodies", type=Path, required=True, help="one /predict body per line")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    bodies = args.bodies.read_bytes().splitlines()
    figures = asyncio.run(run_schedule(args.url, args.rate, args.seconds, bodies))
    args.out.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
