"""The figures of one `benchmarks.run` results dict that goals name, and each goal's verdict.

A figure is `<server>.<figure>` (a path into that server's results, or one `server_figure`
computes) or `model.<variant>.<rows>` (µs per row). The peers are servers of the results with
an open-loop ladder only.
"""

import math
import statistics
from typing import Any, Final

from benchmarks.goals import Goals
from benchmarks.peers.envs import BENTOML, MLSERVER

#: The peers' names in the results (`servers.<peer>`), as their environments are named.
PEERS: Final = (MLSERVER.name, BENTOML.name)
#: Two workers per core are recommended only if they sustain this much more than one, and
#: their p95 at the common rate is at most this much higher: else the second worker's memory
#: and cold start buy nothing.
WORKER_GAIN: Final = 1.1

Results = dict[str, Any]
Server = dict[str, Any]


def number(value: float | None, digits: int = 0) -> str:
    """A figure as the report writes it: thousands separated, "–" when there is none."""
    return "–" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _fig(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def at_path(found: Any, name: str) -> Any:
    """The value at a dotted path into nested dicts, None where the path ends early."""
    for key in name.split("."):
        if not isinstance(found, dict) or key not in found:
            return None
        found = found[key]
    return found


def step_at(server: Server, rate: float | None) -> dict[str, Any] | None:
    """The server's Locust ladder step at an offered rate, if it ran one."""
    return next((step for step in server.get("ladder", []) if step["offered_rps"] == rate), None)


def baseline_rate(servers: dict[str, Server]) -> float | None:
    """The highest offered rate the baseline sustained (every server ran it)."""
    steps = servers.get("baseline", {"ladder": []})["ladder"]
    return max((step["offered_rps"] for step in steps if step["sustained"]), default=None)


def servers_rate(servers: dict[str, Server]) -> float | None:
    """The highest offered rate the baseline sustained in the open loop (ours ran it too)."""
    found = servers.get("baseline", {}).get("open_loop_ladder", {})
    rate: float | None = found.get("max_sustained_offered_rps")
    return rate


def model_cells(results: Results) -> dict[tuple[str, int], dict[str, Any]]:
    """pytest-benchmark's entries by (variant, rows)."""
    entries = results["model_bench"]["benchmarks"]
    return {(e["params"]["variant"], e["params"]["rows"]): e for e in entries}


def server_rows(results: Results) -> list[tuple[str, str, int]]:
    """The side-by-side table: label, figure (see `server_figure`), decimals."""
    rate, mixed = baseline_rate(results["servers"]), number(results["setup"]["mixed_rate_rps"])
    at = f"at {number(rate)} req/s (baseline's max sustained), ms"
    loop_rate = number(results["setup"]["open_loop_rate"])
    loop_base = servers_rate(results["servers"])
    loop_at = f"at {number(loop_base)} req/s (baseline's max sustained), ms"
    return [
        ("open loop: max sustained single-car RPS", "open_loop_ladder.max_sustained_rps", 0),
        ("Locust: max sustained single-car RPS", "max_sustained_rps", 0),
        *(
            (f"open loop: {p} {loop_at}", f"open_loop_at_baseline_rate.{p}_ms", 2)
            for p in ("p50", "p95", "p99")
            if loop_base
        ),
        *((f"Locust: {p} {at}", f"{p}_at_baseline_rate", 2) for p in ("p50", "p95", "p99") if rate),
        ("Locust: saturation RPS (64 users, no wait)", "saturation.rps", 0),
        ("Locust: p95 at saturation, ms", "saturation.p95_ms", 2),
        *((f"batch rows/s, {n}-car requests", f"batch.{n}.rows_per_s", 0) for n in ("100", "1000")),
        (
            "batch rows/s, 1,000-car requests, interleaved rounds (median)",
            "batch_interleaved.median_rows_per_s",
            0,
        ),
        *((f"batch p95, {n}-car requests, ms", f"batch.{n}.p95_ms", 1) for n in ("100", "1000")),
        (f"mixed at {mixed} req/s: achieved RPS", "mixed.rps", 0),
        (f"mixed at {mixed} req/s: p95, ms", "mixed.p95_ms", 2),
        *(
            (f"open loop, {loop_rate} req/s each: {path} {p}, ms", f"open_loop.{kind}.{p}_ms", 2)
            for kind, path in (("predict", "/predict"), ("health", "/health"))
            for p in ("p50", "p99")
        ),
        ("cold start (median), s", "cold_start_s", 2),
        ("cold start (best), s", "best_cold_start_s", 2),
        ("RSS per worker after load, MB", "memory_after_load.max_worker_rss_mb", 0),
        ("USS per worker after load, MB", "memory_after_load.max_worker_uss_mb", 0),
    ]


#: Figures of ours alone, beyond the side-by-side table: label, figure, decimals.
OURS_ROWS: Final = [
    ("single p50 at 50 req/s, alone, ms", "batch_vs_single.singles_alone.p50_ms", 2),
    ("single p50 at 50 req/s, with batches, ms", "batch_vs_single.with_batches.single.p50_ms", 2),
    ("single p99 at 50 req/s, alone, ms", "batch_vs_single.singles_alone.p99_ms", 2),
    ("single p99 at 50 req/s, with batches, ms", "batch_vs_single.with_batches.single.p99_ms", 2),
    ("single failures, with batches", "batch_vs_single.with_batches.single.failures", 0),
    ("batches/s, alone", "batch_vs_single.batches_alone.achieved_rps", 2),
    ("batches/s, with singles", "batch_vs_single.with_batches.batch.achieved_rps", 2),
    ("batch p50, alone, ms", "batch_vs_single.batches_alone.p50_ms", 0),
    ("batch p50, with singles, ms", "batch_vs_single.with_batches.batch.p50_ms", 0),
]
#: Figures at each peer's max sustained rate (ours' step there, and the peer's own).
PEER_ROWS: Final = [
    (f"open loop: p95 at {peer}'s max sustained rate, ms", f"open_loop_at_{peer}_rate.p95_ms", 2)
    for peer in PEERS
]


def server_figure(results: Results, server: Server, name: str) -> float | None:
    """A figure of one server: a path into its results, or one of the few computed here.

    None when the server has no such figure (a stage it did not run).
    """
    if name.endswith("_at_baseline_rate"):
        step = step_at(server, baseline_rate(results["servers"])) or {}
        return step.get(name.removesuffix("_at_baseline_rate") + "_ms")
    if name in ("cold_start_s", "best_cold_start_s"):
        starts = server.get("cold_starts_s")  # none: a peer that could not be started
        return (statistics.median if name == "cold_start_s" else min)(starts) if starts else None
    value: float | None = at_path(server, name)
    return value


def recommended_workers(workers: dict[str, Any]) -> int:
    """Granian workers per core: 2 if they beat 1 by `WORKER_GAIN` in rate, at no p95 cost."""
    one, two = workers["1"], workers["2"]
    p95_one, p95_two = (at_path(n, "at_common_rate.p95_ms") for n in (one, two))
    faster = two["max_sustained_rps"] >= WORKER_GAIN * one["max_sustained_rps"]
    if p95_one is None or p95_two is None:
        return 1
    return 2 if faster and p95_two <= WORKER_GAIN * p95_one else 1


def figures(results: Results) -> dict[str, float | None]:
    """What goals name: `<server>.<figure>` (see `server_figure`), `model.<variant>.<rows>`.

    Also `<server>.batch_interleaved.median_ratio_to_baseline`, where the run had the rounds.
    """
    found = {
        f"{name}.{key}": server_figure(results, server, key)
        for name, server in results["servers"].items()
        for _, key, _ in [*server_rows(results), *OURS_ROWS, *PEER_ROWS]
    }
    # Paired per round (`benchmarks.batch_ab`): the median of ours over the baseline's rows/s.
    for name, ratio in results.get("batch_interleaved", {}).get("median_ratio", {}).items():
        found[f"{name}.batch_interleaved.median_ratio_to_baseline"] = ratio
    for (variant, rows), cell in model_cells(results).items():
        found[f"model.{variant}.{rows}"] = cell["stats"]["median"] / rows * 1e6  # µs per row
    return found


def goal_rows(results: Results, goals: Goals) -> list[tuple[str, str, str, bool | None]]:
    """(goal, target, measured, met; None when not measured) for each goal."""
    known, rows = figures(results), []
    for goal in goals.goal:
        target = f"{goal.comparison.replace('>=', '≥').replace('<=', '≤')} {goal.target:,g}"
        target += goal.unit if goal.unit == "×" else f" {goal.unit}"
        value, over = known.get(goal.figure), known.get(goal.over) if goal.over else 1.0
        if value is None or not over:  # 0: e.g. a baseline that sustained no step
            missing = [name for name in (goal.figure, goal.over) if name and not known.get(name)]
            rows.append((goal.text, target, f"not measured: {', '.join(missing)}", None))
            continue
        ratio = value / over
        if goal.over:
            measured = f"{_fig(value)} vs {_fig(over)} = {ratio:.2f}×"
        else:  # a ratio computed elsewhere keeps its unit
            measured = _fig(value) + ("×" if goal.unit == "×" else "")
        met = ratio >= goal.target if goal.comparison == ">=" else ratio <= goal.target
        rows.append((goal.text, target, measured, met))
    return rows
