"""Each peer measured as ours is, plus what only a peer needs: its env and a price parity check.

Per peer, in turn: its environment built if needed (`envs`), started and timed like every
server (`servers.start_timed`: pinned to the server core, cold starts), its prices for the
first cars held against ours (the same model?), then the open-loop ladder every server climbs
(`openloop_runs`: the same rates, sustained rule and schedule seed), with the peer's routes and
request bodies. The parity requests come before the ladder, so they are also its warm-up: a
peer's first requests (lazy imports, first batches) stay out of the first step, as ours' do
behind its Locust stages. Ours at each peer's max sustained rate is `benchmarks.run`'s.
"""

import argparse
import logging
import subprocess
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec
import pandas as pd

from benchmarks.champion import Champion, car_dicts
from benchmarks.openloop_runs import OpenLoopProcess
from benchmarks.peers.specs import Peer, peers
from benchmarks.servers import start_timed
from shared_schema import Car

logger = logging.getLogger("benchmarks.peers")

#: Cars whose prices each peer must give as ours does.
PARITY_CARS: Final = 50
#: Distributions whose versions the results name (all installed ones are kept too).
_KEY_PACKAGES: Final = ("mlserver", "mlserver-lightgbm", "lightgbm", "bentoml", "onnxruntime")


def prices(url: str, bodies: Sequence[bytes], read: Callable[[bytes], float]) -> list[float]:
    """The prices a server answers at `url` for `bodies`, one request each."""
    found = []
    for body in bodies:
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
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


def measure_peers(
    champion: Champion, frame: pd.DataFrame, args: argparse.Namespace, work: Path
) -> dict[str, dict[str, Any]]:
    """MLServer and BentoML in turn, as `benchmarks.run` measures a server (no Locust stages).

    Needs the training pipeline (MLServer serves its booster).

    Returns:
        Per peer, like a server's results: `open_loop_ladder`, `cold_starts_s`,
        `memory_after_load`, and its title, settings, versions and `parity`; a peer that could
        not be installed, started or measured has only its "title" and "error".
    """
    from inference.model import load_bundle
    from training.config import load_params

    tolerance = load_params().export.parity_tolerance
    cars = msgspec.convert(car_dicts(frame.head(PARITY_CARS)), list[Car])
    ours = load_bundle(champion.bundle_dir).run(cars).prices  # as our server runs the bundle
    results: dict[str, dict[str, Any]] = {}
    for name, peer in peers(champion, frame, work).items():
        try:
            results[name] = measure(peer, args, work)
        except (OSError, RuntimeError, subprocess.SubprocessError) as error:
            logger.exception("%s not measured", name)
            results[name] = {"title": peer.spec.title, "error": str(error)}
            continue
        results[name]["parity"] = parity(ours, results[name].pop("prices"), tolerance)
        ladder = results[name]["open_loop_ladder"]
        logger.info("%s: max sustained %.0f req/s (open loop)", name, ladder["max_sustained_rps"])
    return results


def measure(peer: Peer, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Install (if needed), start, check and climb one peer."""
    name = peer.spec.name
    peer.env.ensure()
    bodies = work / f"{name}-bodies.jsonl"
    bodies.write_bytes(b"\n".join(peer.bodies))
    server, cold_starts = start_timed(peer.spec, peer.port, work / f"{name}.log", args.cold_starts)
    try:
        url = server.url + peer.spec.predict_path
        found = prices(url, peer.bodies[:PARITY_CARS], peer.price)
        ladder = OpenLoopProcess(server, work, args, bodies).ladder(name)["ladder"]
        memory = server.memory()
    finally:
        server.stop()
    versions = peer.env.versions()
    return {
        "title": peer.spec.title,
        "settings": peer.settings,
        "versions": {key: versions[key] for key in _KEY_PACKAGES if key in versions},
        "installed": versions,
        "cold_starts_s": cold_starts,
        "open_loop_ladder": ladder,
        "memory_after_load": memory,
        "prices": found,
    }
