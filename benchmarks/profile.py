"""Where a single-car request spends its time: pyinstrument over the hottest path.

Ours: the real app from `inference.app.create_app`, driven in-process through ASGI (lifespan,
routing, decoding, micro-batching, the ORT run, encoding), 16 requests in flight as under load;
Granian's HTTP handling is Rust and not visible here. Baseline: what each request does in its
endpoint (pydantic validation, the one-row DataFrame, the pipeline), in this thread, because a
sampling profiler of the event loop does not see FastAPI's thread pool.

`benchmarks.run` runs this file with `model_bench.py`, pinned to one core; the summaries go
into pytest-benchmark's JSON (`extra_info`), whose own timing of the profiled run is not used.
"""

import asyncio
import collections
import random
from functools import partial
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pytest

from benchmarks.champion import NO_BOOSTER, Champion, load_pipeline, request_bodies

_IN_FLIGHT: Final = 16
_TOP: Final = 12


def _profiler() -> Any:
    from pyinstrument import Profiler

    return Profiler(interval=0.0002, async_mode="disabled")


async def _post(app: Any, body: bytes) -> int:
    """One `POST /predict` through the ASGI app; the response status."""
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST"}
    scope |= {"scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b""}
    scope |= {"root_path": "", "headers": [*headers, (b"content-length", b"%d" % len(body))]}
    scope |= {"client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {}}
    messages, sent = [{"type": "http.request", "body": body}], []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # no disconnect: wait until cancelled
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return int(sent[0]["status"])


def profile_ours(bundle_dir: Path, bodies: list[bytes], requests: int) -> Any:
    """Our app inside its lifespan: `requests` requests, 16 at a time, after a twentieth more."""
    from inference.app import create_app
    from inference.settings import Settings

    # The longest request deadline and lag bound: on a starved machine, under the profiler,
    # requests would be shed (503); shedding is not on the measured path.
    settings = Settings(
        model_dir=str(bundle_dir),
        reload_poll_s=0.0,
        request_deadline_ms=60_000,
        shed_lag_ms=60_000,
    )
    app = create_app(settings)

    async def in_flight(times: int) -> None:
        for _ in range(times // _IN_FLIGHT):
            posts = [_post(app, random.choice(bodies)) for _ in range(_IN_FLIGHT)]
            if (statuses := set(await asyncio.gather(*posts))) != {200}:
                raise RuntimeError(f"our app answered {statuses}")

    async def profile() -> Any:
        async with app.lifespan():
            await in_flight(requests // 20)
            with _profiler() as profiler:
                await in_flight(requests)
        return profiler

    return asyncio.run(profile())


def profile_baseline(pipeline_dir: Path, bodies: list[bytes], requests: int) -> Any:
    """The baseline endpoint's work, `requests` times, after a twentieth more."""
    import pandas as pd

    from benchmarks.baseline.app import CarIn

    pipeline = load_pipeline(pipeline_dir)

    def one() -> float:
        car = CarIn.model_validate_json(random.choice(bodies))
        return float(pipeline.predict_price(pd.DataFrame([car.model_dump()]))[0])

    for _ in range(max(1, requests // 20)):
        one()
    with _profiler() as profiler:
        for _ in range(requests):
            one()
    return profiler


def _package(path: str | None) -> str:
    """The top-level package of a source file ("python" for the standard library)."""
    parts = Path(path or "?").parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0]
    marker = next(
        (p for p in ("inference", "benchmarks", "shared_schema", "training") if p in parts), None
    )
    return marker or ("python" if "lib" in parts else Path(path or "?").stem)


def summarise(profiler: Any, requests: int) -> dict[str, Any]:
    """Self time per function and per package in µs per request, largest first."""
    functions: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()

    def walk(frame: Any) -> None:
        # pyinstrument keeps a frame's own time in a synthetic "[self]" child.
        own = sum(child.time for child in frame.children if child.identifier == "[self]")
        if own and not frame.is_synthetic:
            package = _package(frame.file_path)
            functions[f"{frame.function} ({package}:{frame.line_no})"] += own
            packages[package] += own
        for child in frame.children:
            walk(child)

    walk(profiler.last_session.root_frame())
    scale = 1e6 / requests
    return {
        "requests": requests,
        "us_per_request": profiler.last_session.duration * scale,
        "by_package_us": {k: v * scale for k, v in packages.most_common(_TOP)},
        "by_function_us": {k: v * scale for k, v in functions.most_common(_TOP)},
        "tree": profiler.output_text(unicode=True, color=False, short_mode=True),
    }


@pytest.mark.parametrize("side", ["ours", "baseline"])
def test_profile(
    benchmark: Any, model: tuple[Champion, pd.DataFrame], side: str, pytestconfig: pytest.Config
) -> None:
    """Profile one side's request path; the summary goes into pytest-benchmark's JSON."""
    champion, frame = model
    if side == "baseline" and champion.pipeline_dir is None:
        pytest.skip(NO_BOOSTER)
    bodies = request_bodies(frame.head(2000))
    requests = pytestconfig.getoption("requests") // (1 if side == "ours" else 20)
    if side == "ours":
        run = partial(profile_ours, champion.bundle_dir, bodies, requests)
    else:
        run = partial(profile_baseline, champion.pipeline_dir, bodies, requests)
    benchmark.group = "profile"
    benchmark.extra_info.update(summarise(benchmark.pedantic(run), requests))
