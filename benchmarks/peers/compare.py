"""Ours against each peer, the same generator for all: an open-loop single-car rate ladder.

Each server in turn, pinned to the server core, takes `openloop.run_schedule` at rising rates
(one car per request, Poisson arrivals, latency from the scheduled send) until a step is not
sustained by the rule in `goals.toml`. A peer's figures: its max sustained rate and its p95
there; ours: the same, and our p95 at each peer's max sustained rate, from the same run. Before
its ladder each peer's prices on real cars are held against ours (the same model?).
"""

import asyncio
import json
import logging
import math
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pandas as pd

from benchmarks.champion import Champion, request_bodies
from benchmarks.openloop import run_schedule
from benchmarks.peers.specs import Peer, peers
from benchmarks.report import Sustained, load_goals
from benchmarks.servers import RunningServer, free_port, server_specs

logger = logging.getLogger("benchmarks.peers")

#: Offered single-car rates (requests/s) of the open-loop ladder.
RATES: Final = (50, 100, 200, 400, 600, 800, 1000, 1500, 2000, 2500, 3000, 4000)
#: Seconds of unrecorded load before a ladder.
WARM_UP_S: Final = 3.0
#: Extra attempts of a step that was not sustained before the ladder ends.
RETRIES: Final = 1
#: Cars whose prices each peer must give as ours does.
PARITY_CARS: Final = 50
#: Distributions whose versions the results name (all installed ones are kept too).
_KEY_PACKAGES: Final = ("mlserver", "mlserver-lightgbm", "lightgbm", "bentoml", "onnxruntime")
_HEADERS: Final = {"Content-Type": "application/json"}


class Target:
    """A running server and where its one-car requests go."""

    def __init__(self, server: RunningServer, path: str, bodies: list[bytes]) -> None:
        self.server, self.path, self.bodies = server, path, bodies

    def step(self, rate: float, seconds: float, rule: Sustained) -> dict[str, Any]:
        """One open-loop step at `rate`: achieved rate, failures, percentiles, sustained."""
        figures = asyncio.run(
            run_schedule(
                self.server.url, rate, seconds, self.bodies, path=self.path, health_path=None
            )
        )
        predict = figures["predict"]
        ok = predict["sent"] - predict["failures"]
        # Poisson arrivals scatter around `rate`: what a server must keep up with is what was
        # sent, so the sustained rule compares the achieved rate with that.
        step = {
            "offered_rps": rate,
            "sent_rps": predict["sent"] / seconds,
            "rps": ok / figures["elapsed_s"],
            "failure_rate": predict["failures"] / max(predict["sent"], 1),
            **{key: predict[key] for key in ("p50_ms", "p95_ms", "p99_ms")},
        }
        if step["p95_ms"] is None:  # nothing answered
            step["p95_ms"] = math.inf
        return step | {"sustained": rule.holds(step | {"offered_rps": step["sent_rps"]})}

    def ladder(self, rates: list[float], seconds: float, rule: Sustained) -> list[dict[str, Any]]:
        """Steps at `rates` in order, up to and including the first not sustained.

        A warm-up step at the first rate comes first, not recorded: every server's first
        requests (lazy imports, first batches, allocator growth) stay out of the figures. A
        step not sustained is run again (`RETRIES`), both recorded: on a machine shared with
        other jobs one stall of a co-tenant must not end a ladder; a server that cannot keep
        up fails both.
        """
        self.step(rates[0], WARM_UP_S, rule)
        steps: list[dict[str, Any]] = []
        for rate in rates:
            for attempt in range(1 + RETRIES):
                steps.append(self.step(rate, seconds, rule) | {"attempt": attempt + 1})
                logger.info("%s %s", self.server.spec.name, steps[-1])
                if steps[-1]["sustained"]:
                    break
            if not steps[-1]["sustained"]:
                break
        return steps


def best(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The sustained step of the highest achieved rate (None: none sustained)."""
    return max((step for step in steps if step["sustained"]), key=lambda s: s["rps"], default=None)


def prices(target: Target, cars: int, read: Callable[[bytes], float]) -> list[float]:
    """The prices a server answers for the first `cars` bodies, one request each."""
    found = []
    for body in target.bodies[:cars]:
        request = urllib.request.Request(target.server.url + target.path, body, _HEADERS)
        with urllib.request.urlopen(request, timeout=10) as response:
            found.append(float(read(response.read())))
    return found


def parity(ours: list[float], theirs: list[float], tolerance: float) -> dict[str, Any]:
    """Largest relative difference of a peer's prices from ours, against the export gate."""
    worst = max(abs(t - o) / abs(o) for o, t in zip(ours, theirs, strict=True))
    return {
        "cars": len(ours),
        "max_relative_diff": worst,
        "tolerance": tolerance,
        "same_model": worst <= tolerance,
    }


def compare(
    champion: Champion,
    frame: pd.DataFrame,
    work: Path,
    rates: list[float],
    seconds: float,
    *,
    names: list[str] | None = None,
) -> dict[str, Any]:
    """Ours, then each peer: ladders, parity, and the ratios' figures per peer.

    Returns:
        `{"ours_open_loop": {...}, "<peer>": {...}}`; a peer that could not be installed or
        started has only its "error".
    """
    from training.config import load_params

    rule, tolerance = load_goals().sustained, load_params().export.parity_tolerance
    port = free_port()
    spec = next(spec for spec in server_specs(champion, port, work) if spec.name == "ours")
    ours = Target(
        RunningServer(spec, port, work / "peers-ours.log"), "/predict", request_bodies(frame)
    )
    try:
        ours_steps = ours.ladder(rates, seconds, rule)
        ours_prices = prices(ours, PARITY_CARS, lambda body: float(json.loads(body)["price_rub"]))
    finally:
        ours.server.stop()
    top = best(ours_steps)  # the ladder's, before any step added at a peer's rate
    results: dict[str, Any] = {}
    for name, peer in peers(champion, frame, work).items():
        if names and name not in names:
            continue
        try:
            results[name] = run_peer(peer, work, rates, seconds, rule)
        except (OSError, RuntimeError) as error:
            logger.exception("%s not measured", name)
            results[name] = {"title": peer.spec.title, "error": str(error)}
            continue
        results[name]["parity"] = parity(ours_prices, results[name].pop("prices"), tolerance)
    # Ours at each peer's max sustained rate: from its ladder, or one more step at that rate.
    for figures in results.values():
        rate = figures.get("max_sustained_offered_rps")
        if rate is None:
            continue
        step = next((s for s in reversed(ours_steps) if s["offered_rps"] == rate), None)
        if step is None:
            ours.server = RunningServer(spec, port, work / "peers-ours.log")
            try:
                step = ours.step(rate, seconds, rule) | {"extra": True}
            finally:
                ours.server.stop()
            ours_steps.append(step)
        figures["ours_p95_at_peer_max_ms"] = step["p95_ms"]
    for figures in results.values():
        figures["ours_max_sustained_rps"] = top["rps"] if top else None
    return {
        "ours_open_loop": {"ladder": ours_steps, "max_sustained_rps": top and top["rps"]}
    } | results


def run_peer(
    peer: Peer, work: Path, rates: list[float], seconds: float, rule: Sustained
) -> dict[str, Any]:
    """Install (if needed), start, check and climb one peer."""
    peer.env.ensure()
    server = RunningServer(peer.spec, peer.port, work / f"peers-{peer.spec.name}.log")
    target = Target(server, peer.predict_path, peer.bodies)
    try:
        found = prices(target, PARITY_CARS, peer.price)
        steps = target.ladder(rates, seconds, rule)
        memory = server.memory()
    finally:
        server.stop()
    top = best(steps)
    versions = peer.env.versions()
    return {
        "title": peer.spec.title,
        "settings": peer.settings,
        "versions": {name: versions[name] for name in _KEY_PACKAGES if name in versions},
        "installed": versions,
        "cold_start_s": server.cold_start_s,
        "memory_after_load": memory,
        "ladder": steps,
        "max_sustained_rps": top and top["rps"],
        "max_sustained_offered_rps": top and top["offered_rps"],
        "p95_at_own_max_ms": top and top["p95_ms"],
        "prices": found,
    }
