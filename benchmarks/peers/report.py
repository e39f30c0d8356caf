"""The peers' part of the results: the figures goals name, and a Markdown section."""

import json
from typing import Any, Final

from benchmarks.peers.envs import BENTOML, MLSERVER

#: A peer's figures goals may name (see `benchmarks.peers.compare`).
FIGURES: Final = (
    "max_sustained_rps",
    "p95_at_own_max_ms",
    "ours_max_sustained_rps",
    "ours_p95_at_peer_max_ms",
    "cold_start_s",
)
#: Entries of `results["peers"]` that are not a peer.
_NOT_PEERS: Final = ("ours_open_loop", "not_measured")


def _peers(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = results.get("peers", {})
    return {name: peer for name, peer in found.items() if name not in _NOT_PEERS}


def figures(results: dict[str, Any]) -> dict[str, float | None]:
    """`<peer>.<figure>` for each peer and figure goals may name; None when not measured."""
    found = _peers(results)
    return {
        f"{env.name}.{key}": found.get(env.name, {}).get(key)
        for env in (MLSERVER, BENTOML)
        for key in FIGURES
    }


def _num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _ratio(value: float | None, over: float | None) -> str:
    return f"{value / over:.2f}×" if value and over else "–"


def section(results: dict[str, Any]) -> list[str]:
    """Markdown lines: ours vs each peer, the ladders, settings and versions (none: no peers)."""
    if "peers" not in results:
        return []
    lines = ["## Peers: open-loop single-car ladder, same run", ""]
    if why := results["peers"].get("not_measured"):
        return [*lines, f"Not measured: {why}.", ""]
    head = "| | max sustained RPS | p95 at the peer's max, ms | parity | cold start, s | RSS, MB |"
    lines += [head, "|---|---:|---:|---:|---:|---:|"]
    for peer in _peers(results).values():
        if "error" in peer:
            lines.append(f"| {peer['title']} | not measured: {peer['error'][:200]} | | | | |")
            continue
        ours_max, theirs_max = peer["ours_max_sustained_rps"], peer["max_sustained_rps"]
        ours_p95, theirs_p95 = peer.get("ours_p95_at_peer_max_ms"), peer["p95_at_own_max_ms"]
        parity = peer["parity"]
        lines.append(
            f"| {peer['title']} | {_num(theirs_max)} (ours {_num(ours_max)}: "
            f"{_ratio(ours_max, theirs_max)}) | {_num(theirs_p95, 2)} (ours {_num(ours_p95, 2)}: "
            f"{_ratio(ours_p95, theirs_p95)}) | {parity['max_relative_diff']:.1e} "
            f"over {parity['cars']} cars | {peer['cold_start_s']:.1f} | "
            f"{peer['memory_after_load']['max_worker_rss_mb']:.0f} |"
        )
    ladders = {"ours": results["peers"]["ours_open_loop"]["ladder"]}
    ladders |= {name: peer["ladder"] for name, peer in _peers(results).items() if "ladder" in peer}
    rates = sorted({step["offered_rps"] for steps in ladders.values() for step in steps})

    def cell(steps: list[dict[str, Any]], rate: float) -> str:
        # The last attempt at a rate (a step not sustained may be run again).
        found = [s for s in steps if s["offered_rps"] == rate]
        if not found:
            return "–"
        step = found[-1]
        mark = "" if step["sustained"] else " ✗"
        return f"{step['rps']:,.0f} / {step['p95_ms']:.2f}{mark}"

    lines += [
        "",
        "Achieved req/s / p95 ms per offered rate (✗ = not sustained; Poisson arrivals, "
        "latency from the scheduled send):",
        "",
        "| offered req/s | " + " | ".join(ladders) + " |",
        "|---:|" + "---:|" * len(ladders),
        *(
            f"| {rate:,.0f} | " + " | ".join(cell(steps, rate) for steps in ladders.values()) + " |"
            for rate in rates
        ),
        "",
    ]
    for name, peer in _peers(results).items():
        if "settings" in peer:
            versions = ", ".join(f"{k} {v}" for k, v in peer["versions"].items())
            lines.append(f"- **{name}** ({versions}): `{json.dumps(peer['settings'])}`")
    return [*lines, ""]
