"""The Markdown report of one `benchmarks.run` results dict: goals, side by side, ladder, model.

The goals and the rule for a sustained step are data, read from `benchmarks/goals.toml`. The
peers are servers of the results with an open-loop ladder only: the Locust tables skip them.
"""

import json
import math
import statistics
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from benchmarks.champion import NO_BOOSTER
from benchmarks.model_bench import VARIANTS
from benchmarks.openloop_runs import MAX_LAG_SHARE, MAX_LOADGEN_CPU
from benchmarks.peers.envs import BENTOML, MLSERVER

GOALS_FILE: Final = Path(__file__).with_name("goals.toml")
COLUMNS: Final = {
    "ours": "ours",
    "ours_unbatched": "ours, no micro-batching",
    "ours_logged": "ours, prediction log on",
    "baseline": "baseline",
}
#: The peers' names in the results (`servers.<peer>`), as their environments are named.
PEERS: Final = (MLSERVER.name, BENTOML.name)
_LOADGEN_BUSY: Final = 0.9
#: Two workers per core are recommended only if they sustain this much more than one, and
#: their p95 at the common rate is at most this much higher: else the second worker's memory
#: and cold start buy nothing.
_WORKER_GAIN: Final = 1.1
#: How far above ours' capacity the open-loop generator must be able to offer.
_GENERATOR_MARGIN: Final = 1.5
#: Cores other processes used in a load stage above which the report calls the machine shared.
_SHARED_CORES: Final = 0.1

Results = dict[str, Any]
Server = dict[str, Any]


class Sustained(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """When a fixed-rate step counts as sustained."""

    min_achieved: float
    max_failure_rate: float
    max_p95_ms: float

    def holds(self, step: dict[str, Any]) -> bool:
        """Whether a fixed-rate step's figures meet every condition."""
        return bool(
            step["rps"] >= self.min_achieved * step["offered_rps"]
            and step["failure_rate"] < self.max_failure_rate
            and step["p95_ms"] <= self.max_p95_ms
        )


class Goal(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One goal: a figure (or its ratio to another) compared with a target."""

    text: str
    figure: str
    comparison: Literal[">=", "<="]
    target: float
    unit: str
    over: str | None = None


class Goals(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`goals.toml`."""

    sustained: Sustained
    goal: list[Goal]


def load_goals(path: Path = GOALS_FILE) -> Goals:
    """Read and validate the goals file."""
    return msgspec.toml.decode(path.read_bytes(), type=Goals)


def _num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _fig(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _table(head: list[str], rows: list[list[str]], align: str = "---:") -> list[str]:
    return [f"| {' | '.join(head)} |", "|---|" + f"{align}|" * (len(head) - 1)] + [
        f"| {' | '.join(row)} |" for row in rows
    ]


def _step_at(server: Server, rate: float | None) -> dict[str, Any] | None:
    return next((step for step in server.get("ladder", []) if step["offered_rps"] == rate), None)


def stages(server: Server) -> list[dict[str, Any]]:
    """Every recorded Locust stage of one server (none for a peer)."""
    if "saturation" not in server:
        return []
    return [*server["ladder"], server["saturation"], *server["batch"].values(), server["mixed"]]


def baseline_rate(servers: dict[str, Server]) -> float | None:
    """The highest offered rate the baseline sustained (every server ran it)."""
    steps = servers.get("baseline", {"ladder": []})["ladder"]
    return max((step["offered_rps"] for step in steps if step["sustained"]), default=None)


def model_cells(results: Results) -> dict[tuple[str, int], dict[str, Any]]:
    """pytest-benchmark's entries by (variant, rows)."""
    entries = results["model_bench"]["benchmarks"]
    return {(e["params"]["variant"], e["params"]["rows"]): e for e in entries}


def server_rows(results: Results) -> list[tuple[str, str, int]]:
    """The side-by-side table: label, figure (see `server_figure`), decimals."""
    rate, mixed = baseline_rate(results["servers"]), _num(results["setup"]["mixed_rate_rps"])
    at = f"at {_num(rate)} req/s (baseline's max sustained), ms"
    loop_rate = _num(results["setup"]["open_loop_rate"])
    loop_base = servers_rate(results["servers"])
    loop_at = f"at {_num(loop_base)} req/s (baseline's max sustained), ms"
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


def servers_rate(servers: dict[str, Server]) -> float | None:
    """The highest offered rate the baseline sustained in the open loop (ours ran it too)."""
    found = servers.get("baseline", {}).get("open_loop_ladder", {})
    rate: float | None = found.get("max_sustained_offered_rps")
    return rate


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
WORKER_ROWS: Final = [
    ("max sustained single-car RPS (open loop)", "max_sustained_rps", 0),
    ("achieved RPS at the common rate", "at_common_rate.achieved_rps", 0),
    ("p50 at the common rate, ms", "at_common_rate.p50_ms", 2),
    ("p95 at the common rate, ms", "at_common_rate.p95_ms", 2),
    ("p99 at the common rate, ms", "at_common_rate.p99_ms", 2),
    ("server CPU at the common rate, cores", "at_common_rate.server_cpu_cores", 2),
]


def _path(found: Any, name: str) -> Any:
    for key in name.split("."):
        if not isinstance(found, dict) or key not in found:
            return None
        found = found[key]
    return found


def server_figure(results: Results, server: Server, name: str) -> float | None:
    """A figure of one server: a path into its results, or one of the few computed here.

    None when the server has no such figure (a stage it did not run).
    """
    if name.endswith("_at_baseline_rate"):
        step = _step_at(server, baseline_rate(results["servers"])) or {}
        return step.get(name.removesuffix("_at_baseline_rate") + "_ms")
    if name in ("cold_start_s", "best_cold_start_s"):
        starts = server.get("cold_starts_s")  # none: a peer that could not be started
        return (statistics.median if name == "cold_start_s" else min)(starts) if starts else None
    value: float | None = _path(server, name)
    return value


def recommended_workers(workers: dict[str, Any]) -> int:
    """Granian workers per core: 2 if they beat 1 by `_WORKER_GAIN` in rate, at no p95 cost."""
    one, two = workers["1"], workers["2"]
    p95_one, p95_two = (_path(n, "at_common_rate.p95_ms") for n in (one, two))
    faster = two["max_sustained_rps"] >= _WORKER_GAIN * one["max_sustained_rps"]
    if p95_one is None or p95_two is None:
        return 1
    return 2 if faster and p95_two <= _WORKER_GAIN * p95_one else 1


def figures(results: Results) -> dict[str, float | None]:
    """What goals name: `<server>.<figure>` (see `server_figure`), `model.<variant>.<rows>`."""
    found = {
        f"{name}.{key}": server_figure(results, server, key)
        for name, server in results["servers"].items()
        for _, key, _ in [*server_rows(results), *OURS_ROWS, *PEER_ROWS]
    }
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
        measured = f"{_fig(value)} vs {_fig(over)} = {ratio:.2f}×" if goal.over else _fig(value)
        met = ratio >= goal.target if goal.comparison == ">=" else ratio <= goal.target
        rows.append((goal.text, target, measured, met))
    return rows


def _side_by_side(results: Results) -> list[str]:
    servers, rows = results["servers"], []
    names = [name for name in COLUMNS if name in servers]
    for label, key, digits in server_rows(results):
        known = {name: server_figure(results, servers[name], key) for name in names}
        ours, base = known["ours"], known.get("baseline")
        ratio = f"{ours / base:.{2 if digits else 1}f}×" if ours and base else "–"
        rows.append([label, *(_num(value, digits) for value in known.values()), ratio])
    return _table(["metric", *(COLUMNS[name] for name in names), "ours / baseline"], rows)


def _ladder(servers: dict[str, Server]) -> list[str]:
    names = [name for name in COLUMNS if name in servers]
    rates = sorted({step["offered_rps"] for n in names for step in servers[n]["ladder"]})

    def cell(step: dict[str, Any] | None) -> str:
        if step is None:
            return "–"
        return f"{step['rps']:,.0f} / {step['p95_ms']:.2f}{'' if step['sustained'] else ' ✗'}"

    rows = [[f"{r:,.0f}", *(cell(_step_at(servers[n], r)) for n in names)] for r in rates]
    return _table(["offered req/s", *(f"{COLUMNS[n]}: achieved / p95 ms" for n in names)], rows)


def _open_loop_ladder(servers: dict[str, Server]) -> list[str]:
    """Each open-loop ladder step: offered, achieved, percentiles, CPU, in flight, send lag."""
    rows = []
    ladders = {
        name: s["open_loop_ladder"] for name, s in servers.items() if "open_loop_ladder" in s
    }
    if "workers" in servers.get("ours", {}):
        ladders["ours, 2 workers on 1 core"] = servers["ours"]["workers"]["2"]["ladder"]
    for name, found in ladders.items():
        for step in found["steps"]:
            mark = ("" if step["sustained"] else " ✗") + (" ⚠" if step["generator_limited"] else "")
            rows.append(
                [
                    COLUMNS.get(name, name) + mark,
                    *(_num(step[key]) for key in ("offered_rps", "achieved_rps")),
                    f"{step['requests']:,} / {step['failures']:,}",
                    *(_num(step[f"p{p}_ms"], 2) for p in (50, 95, 99)),
                    *(_num(step[key], 2) for key in ("server_cpu_cores", "others_cpu")),
                    _num(step["in_flight_mean"], 1),
                    f"{_num(step['send_lag_p50_ms'], 2)} / {_num(step['send_lag_p99_ms'], 2)}",
                    f"{_num(step['floor']['p50_ms'], 2)} / {_num(step['floor']['p99_ms'], 2)}",
                ]
            )
    head = ["server", "offered", "achieved", "requests / failed", "p50 ms", "p95 ms", "p99 ms"]
    head += ["server cores", "others' cores", "in flight", "send lag p50 / p99 ms"]
    return _table([*head, "/health p50 / p99 ms"], rows)


def generator_ceiling(servers: dict[str, Server]) -> tuple[float, float] | None:
    """The open-loop generator's CPU ms per request at its busiest step, and its ceiling.

    The ceiling is the rate that would fill its core at that cost: how far above a server's
    capacity this one process can offer.
    """
    steps = [
        s
        for server in servers.values()
        for s in server.get("open_loop_ladder", {}).get("steps", [])
    ]
    busiest = max(steps, key=lambda s: s["requests"] / s["seconds"], default=None)
    if busiest is None or not busiest["loadgen_cpu"]:
        return None
    # The floor's requests cost the generator too: every request of the step counts.
    rate = (busiest["requests"] + busiest["floor"]["requests"]) / busiest["seconds"]
    return busiest["loadgen_cpu"] / rate * 1e3, rate / busiest["loadgen_cpu"]


def _capacity_curve(curve: dict[str, Any]) -> list[str]:
    rows = [
        [
            f"{step['share']:.0%}",
            *(_num(step[key]) for key in ("offered_rps", "achieved_rps")),
            f"{step['requests']:,} / {step['failures']:,}",
            *(_num(step[f"p{p}_ms"], 2) for p in (50, 95, 99)),
            _num(step["server_cpu_cores"], 2),
            _num(step["in_flight_mean"], 1),
        ]
        for step in curve["steps"]
    ]
    head = ["share", "offered", "achieved", "requests / failed", "p50 ms", "p95 ms", "p99 ms"]
    return _table([*head, "server cores", "in flight"], rows)


def _ours_only(results: Results, rows: list[tuple[str, str, int]], server: Server) -> list[str]:
    cells = [[label, _num(server_figure(results, server, key), d)] for label, key, d in rows]
    return _table(["figure", "value"], cells)


def _workers(workers: dict[str, Any]) -> list[str]:
    rows = [
        [label, *(_num(_path(workers[n], key), digits) for n in ("1", "2"))]
        for label, key, digits in WORKER_ROWS
    ]
    return _table(["figure", "WORKERS=1", "WORKERS=2"], rows)


def _model(results: Results) -> list[str]:
    cells = model_cells(results)
    sizes = sorted({rows for _, rows in cells})
    rows, notes, missing = [], [], []

    def us_per_row(cell: dict[str, Any] | None, rows: int) -> str:
        return _num(cell["stats"]["median"] / rows * 1e6, 2) if cell else "–"

    for variant, text in VARIANTS.items():
        found = [cells.get((variant, size)) for size in sizes]
        rows.append([text, *map(us_per_row, found, sizes)])
        info = next((cell["extra_info"] for cell in found if cell), None)
        missing += [variant] if info is None else []
        for key, value in (info or {}).items():
            notes.append(
                f"{variant} {key}: {f'{value:.1e}' if isinstance(value, float) else value}"
            )
    if missing:
        reason = NO_BOOSTER if results["model"]["pipeline_dir"] is None else "skipped, see the log"
        notes.append(f"{', '.join(missing)} not measured: {reason}")
    head = ["runtime", *(f"{size:,} rows" for size in sizes)]
    return [*_table(head, rows), "", "Parity and notes: " + "; ".join(notes) + "."]


def _machine(results: Results) -> str:
    machine, commit = results["model_bench"]["machine_info"], results["model_bench"]["commit_info"]
    others = [
        (stage["others_cpu"], f"{name} {stage['stage']}")
        for name, server in results["servers"].items()
        for stage in stages(server)
    ] + [
        (step["others_cpu"], f"{name} open loop {step['offered_rps']:g} req/s")
        for name, server in results["servers"].items()
        for step in server.get("open_loop_ladder", {}).get("steps", [])
    ]
    most, busiest = max(others)
    shared = "**The machine was shared**" if most > _SHARED_CORES else "The machine was not shared"
    before, after = (
        ", ".join(f"{x:.2f}" for x in results[f"load_average_{t}"]) for t in ("before", "after")
    )
    return (
        f"Machine: {machine['cpu']['count']} CPUs ({machine['cpu']['brand_raw']}), "
        f"{results['ram_gb']} GB RAM, {machine['system']} {machine['release']}, Python "
        f"{machine['python_version']}. Load average before / after: {before} / {after}. "
        f"{shared} during the load stages: other processes used "
        f"{statistics.median(cores for cores, _ in others):.2f} cores in the median stage, "
        f"{most:.2f} at most ({busiest}). Commit {commit['id'][:7]}"
        f"{'+dirty' if commit['dirty'] else ''}, run took {results['duration_s']:.0f} s. "
        f"Scheduling group of the run: {results['autogroup'] or 'n/a'}."
    )


def _ceiling_note(servers: dict[str, Server]) -> str:
    if (ceiling := generator_ceiling(servers)) is None:
        return ""
    ms, rate = ceiling
    capacity = servers.get("ours", {}).get("open_loop_ladder", {}).get("max_sustained_rps")
    share = f", {rate / capacity:.1f}× ours' capacity" if capacity else ""
    short = capacity and rate < _GENERATOR_MARGIN * capacity
    return (
        f" At its busiest step the generator used {ms:.3f} ms of CPU per request: its core "
        f"would be full at about {rate:,.0f} req/s{share}."
        + (
            f" **That is less than {_GENERATOR_MARGIN:g}× ours' capacity: ours' steps near and "
            "above capacity may be bounded by the generator.**"
            if short
            else ""
        )
    )


def _ours_sections(results: Results, ours: Server) -> list[str]:
    lines: list[str] = []
    if curve := ours.get("capacity_curve"):
        lines += [
            f"## Capacity curve of one pod ({curve['workers']} worker, {curve['cores']} core)",
            "",
            f"Capacity (open-loop max sustained rate): {curve['capacity_rps']:,.0f} req/s; "
            f"steps at shares of it, {curve['arrivals']}.",
            "",
            *_capacity_curve(curve),
            "",
        ]
    if scenario := ours.get("batch_vs_single"):
        lines += [
            f"## Batches beside single cars (ours, {scenario['batch_cars']:,}-car batches)",
            "",
            f"Single cars at {scenario['single_rate']:g} req/s (open loop, latency from the "
            "scheduled send), alone and with one client posting batches back to back (closed "
            "loop); batches alone, back to back, in the same run.",
            "",
            *_ours_only(results, OURS_ROWS, ours),
            "",
        ]
    if workers := ours.get("workers"):
        lines += [
            "## Workers per core (ours, both pinned to one core)",
            "",
            f"The same open-loop ladder, and one step at {_num(workers['common_rate_rps'])} "
            "req/s (the same schedule) for both. **Recommended: WORKERS = "
            f"{workers['recommended_per_core']} per core** (2 only if they sustain ≥ "
            f"{_WORKER_GAIN:g}× one worker's rate with p95 at most {_WORKER_GAIN:g}× as high).",
            "",
            *_workers(workers),
            "",
        ]
    return lines


def _peers(results: Results) -> list[str]:
    """Ours against each peer: max sustained rate, p95 at the peer's, parity, start, memory."""
    servers = results["servers"]
    found, ours = {n: servers[n] for n in PEERS if n in servers}, servers.get("ours", {})
    if not found:
        return []
    rows, notes = [], []
    for name, peer in found.items():
        if "error" in peer:
            rows.append([peer["title"], f"not measured: {peer['error'][:200]}", *[""] * 6])
            continue
        at, parity = f"open_loop_at_{name}_rate.p95_ms", peer["parity"]
        rows.append(
            [
                peer["title"],
                *(_num(_path(s, "open_loop_ladder.max_sustained_rps")) for s in (peer, ours)),
                *(_num(_path(s, at), 2) for s in (peer, ours)),
                f"{parity['max_relative_diff']:.1e} over {parity['cars']} cars",
                _num(server_figure(results, peer, "cold_start_s"), 1),
                _num(peer["memory_after_load"]["max_worker_rss_mb"]),
            ]
        )
        versions = ", ".join(f"{k} {v}" for k, v in peer["versions"].items())
        notes.append(f"- **{name}** ({versions}): `{json.dumps(peer['settings'])}`")
    head = ["peer", "max sustained RPS", "ours", "p95 at its max, ms", "ours there, ms"]
    head += ["price parity (max rel. diff)", "cold start, s", "RSS, MB"]
    return [
        "## Peers: the same model served by MLServer and BentoML",
        "",
        "Each peer pinned to the same core as ours, on the same open-loop ladder (its steps are "
        "in the open-loop table above); ours was also sent each peer's max sustained rate, on "
        "the same schedule. Parity: each peer's prices against ours on the first cars.",
        "",
        *_table(head, rows),
        "",
        *notes,
        "",
    ]


def markdown(results: Results, goals: Goals) -> str:
    """The results as Markdown: goals first, then the side-by-side table and the details."""
    servers, env, rule = results["servers"], results["environment"], goals.sustained
    setup, arrivals = results["setup"], results["setup"]["arrivals"]
    ours = servers.get("ours", {})
    goal_table = [
        [goal, target, measured, "n/a" if met is None else "yes" if met else "**no**"]
        for goal, target, measured, met in goal_rows(results, goals)
    ]
    busy = "; ".join(
        f"{name} {stage['stage']}"
        for name, server in servers.items()
        for stage in stages(server)
        if stage["loadgen_cpu"] >= _LOADGEN_BUSY
    )
    busy_note = f"Load generator at ≥ 90 % of its core in: {busy}. Where the server's core was "
    busy_note += "not also busy, the figure is a lower bound set by Locust.\n"
    lines = [
        f"# Benchmarks {results['started_at'][:10]} on {results['host']}",
        "",
        _machine(results),
        "",
        f"Model: **{results['model']['label']}**.",
        "",
        "Setup: each server runs **1 worker pinned to core 0** (`taskset -c 0`), both load "
        "generators are **pinned to core 1**, all traffic on 127.0.0.1. Payloads are real "
        f"held-out cars drawn at run time. Each step runs {setup['step_seconds']:.0f} s. "
        f"A fixed-rate step is **sustained** when achieved ≥ {rule.min_achieved:.0%} "
        f"of offered, failures < {rule.max_failure_rate:.0%} and p95 ≤ {rule.max_p95_ms:g} ms; "
        "a ladder stops at the first step that is not.",
        "",
        f"Arrivals. **Open loop** (the main generator, `openloop.py`): {arrivals['open_loop']}; "
        "latency from each request's scheduled send time, so queueing anywhere counts; each "
        f"ladder step also sends /health at {setup['open_loop_floor_rate']:g} req/s in the same "
        "schedule (the framework floor under that load), and the 50 req/s stage sends /health "
        f"at the same rate as /predict. **Locust** (the second generator): {arrivals['locust']}; "
        "its statistics start once a stage's users have spawned.",
        "",
        "## Goals",
        "",
        *_table(["goal", "target", "measured", "met"], goal_table, align="---"),
        "",
        "## Side by side",
        "",
        *_side_by_side(results),
        "",
        *([busy_note] if busy else []),
        "## Open-loop single-car ladder (✗ = not sustained, ⚠ = generator-limited)",
        "",
        "In flight: achieved rate × mean latency (Little's law). Send lag: how late sends left "
        f"their schedule (⚠ where its median exceeds {MAX_LAG_SHARE:.0%} of the median "
        f"latency, or the generator used ≥ {MAX_LOADGEN_CPU:.0%} of its core: the figure is "
        "partly the generator's). /health: the floor sent beside each step."
        + _ceiling_note(servers),
        "",
        *_open_loop_ladder(servers),
        "",
        "## Locust single-car ladder (✗ = not sustained)",
        "",
        *_ladder(servers),
        "",
        *_ours_sections(results, ours),
        *_peers(results),
        "## Model level: µs per row (median call time / rows; one thread, one core)",
        "",
        *_model(results),
        "",
        "## Profile of one /predict (pyinstrument)",
        "",
    ]
    for side in ("ours", "baseline"):
        if (summary := results["profile"].get(side)) is None:
            why = NO_BOOSTER if results["model"]["pipeline_dir"] is None else "see in_process.log"
            lines.append(f"- **{side}**: not measured: {why}.")
            continue
        top = ", ".join(f"{k} {v:.0f}" for k, v in list(summary["by_package_us"].items())[:6])
        lines.append(
            f"- **{side}**: {summary['us_per_request']:.0f} µs per request under the profiler; "
            f"self time by package (µs/request): {top}."
        )
    if env.get("inference_only_mb"):
        lines += [
            "",
            "## Installed size",
            "",
            f"Inference-only environment (site-packages): {env['inference_only_mb']:.0f} MB vs "
            f"{env['full_mb']:.0f} MB for the full workspace environment "
            f"({env['inference_only_mb'] / env['full_mb']:.2f}×); its packages: "
            f"{', '.join(env['inference_only_packages'])}.",
        ]
    return "\n".join([*lines, ""])
