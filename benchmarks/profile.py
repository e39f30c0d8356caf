"""Where a single-car request spends its time: pyinstrument over the hottest path.

Ours: the real Litestar app from `inference.create_app`, driven in-process through ASGI
(lifespan, routing, msgspec decoding, the micro-batcher, `build_feeds`, the ORT run, the
response encoding), 16 requests in flight at a time as under load. Granian's HTTP handling is
Rust and not visible here. Baseline: what each request does in its endpoint (pydantic
validation, the one-row DataFrame, the pipeline) in the same thread, because FastAPI runs
sync endpoints in a thread pool that a sampling profiler of the loop thread does not see.

    python -m benchmarks.profile --out profile.json
"""

import argparse
import asyncio
import collections
import json
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from benchmarks.champion import Champion, load_champion
from benchmarks.data import car_dicts, held_out_rows
from benchmarks.standin import quiet_sklearn

_IN_FLIGHT: Final = 16
_TOP: Final = 12

Message = dict[str, Any]
ASGIApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


async def _lifespan(
    app: ASGIApp, kind: str, inbox: asyncio.Queue[Message], outbox: asyncio.Queue[Message]
) -> None:
    await inbox.put({"type": f"lifespan.{kind}"})
    reply = await outbox.get()
    if not reply["type"].endswith(".complete"):
        raise RuntimeError(f"lifespan {kind} failed: {reply}")


async def _request(app: ASGIApp, path: str, body: bytes) -> int:
    scope: Message = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    delivered = False
    status = 0

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect: wait until cancelled
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _drive_ours(champion: Champion, bodies: list[bytes], requests: int) -> Any:
    from pyinstrument import Profiler

    from inference.app import create_app
    from inference.settings import Settings

    app: Any = create_app(Settings(model_dir=str(champion.bundle_dir), reload_poll_s=0.0))
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    await _lifespan(app, "startup", inbox, outbox)
    for _ in range(200):  # warm-up, not profiled
        await _request(app, "/predict", random.choice(bodies))
    profiler = Profiler(interval=0.0002, async_mode="disabled")
    profiler.start()
    done = 0
    while done < requests:
        statuses = await asyncio.gather(
            *(_request(app, "/predict", random.choice(bodies)) for _ in range(_IN_FLIGHT))
        )
        if set(statuses) != {200}:
            raise RuntimeError(f"our app answered {statuses}")
        done += _IN_FLIGHT
    profiler.stop()
    await _lifespan(app, "shutdown", inbox, outbox)
    await lifespan
    return profiler


def _profile_baseline(champion: Champion, bodies: list[bytes], requests: int) -> Any:
    import pandas as pd
    from pyinstrument import Profiler

    from benchmarks.baseline.app import CarIn

    pipeline = champion.pipeline

    def one(body: bytes) -> float:
        car = CarIn.model_validate_json(body)
        return float(pipeline.predict(pd.DataFrame([car.model_dump()]))[0])

    for _ in range(20):
        one(random.choice(bodies))
    profiler = Profiler(interval=0.0002, async_mode="disabled")
    profiler.start()
    for _ in range(requests):
        one(random.choice(bodies))
    profiler.stop()
    return profiler


def _package(path: str | None) -> str:
    """The top-level package a source file belongs to ("python" for the standard library)."""
    if not path:
        return "?"
    parts = Path(path).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0]
    for marker in ("inference", "benchmarks", "shared_schema"):
        if marker in parts:
            return marker
    return "python" if "lib" in parts else Path(path).stem


def summarise(profiler: Any, requests: int) -> dict[str, Any]:
    """Self time per function and per package, in µs per request, largest first."""
    session = profiler.last_session
    functions: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()

    def walk(frame: Any) -> None:
        # pyinstrument keeps a frame's own time in a synthetic "[self]" child.
        self_time = sum(child.time for child in frame.children if child.identifier == "[self]")
        if self_time and not frame.is_synthetic:
            name = f"{frame.function} ({_package(frame.file_path)}:{frame.line_no})"
            functions[name] += self_time
            packages[_package(frame.file_path)] += self_time
        for child in frame.children:
            walk(child)

    root = session.root_frame()
    walk(root)
    per_request = 1e6 / requests
    return {
        "requests": requests,
        "us_per_request": session.duration * per_request,
        "by_package_us": {k: v * per_request for k, v in packages.most_common(_TOP)},
        "by_function_us": {k: v * per_request for k, v in functions.most_common(_TOP)},
        "tree": profiler.output_text(unicode=True, color=False, short_mode=True),
    }


def run(requests: int = 4000, which: str = "auto") -> dict[str, Any]:
    """Profile our request path and the baseline's; return both summaries."""
    champion = load_champion(which=which)
    rows = held_out_rows(standin=champion.standin).head(2000)
    bodies = [json.dumps(car, ensure_ascii=False).encode() for car in car_dicts(rows)]
    ours = asyncio.run(_drive_ours(champion, bodies, requests))
    baseline_requests = max(20, requests // 20)
    baseline = _profile_baseline(champion, bodies, baseline_requests)
    return {
        "model": champion.label,
        "ours": summarise(ours, requests),
        "baseline": summarise(baseline, baseline_requests),
    }


def main(argv: list[str] | None = None) -> int:
    """Profile both request paths and write the summaries as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--model", default="auto", choices=["auto", "real", "standin"])
    args = parser.parse_args(argv)
    quiet_sklearn()
    result = run(args.requests, args.model)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        for side in ("ours", "baseline"):
            print(
                side,
                json.dumps(
                    {k: v for k, v in result[side].items() if k != "tree"},
                    indent=1,
                    ensure_ascii=False,
                ),
            )
            print(result[side]["tree"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
