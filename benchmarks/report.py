"""The Markdown report of one `benchmarks.run` results dict: goals, side by side, ladder, model.

The goals and the rules for a sustained step and for a generator-limited one are data
(`benchmarks/goals.toml`, read by `benchmarks.goals`); the figures they name and their verdicts
are `benchmarks.figures`'. The peers are servers of the results with an open-loop ladder only:
the Locust tables skip them.
"""

import json
import statistics
from typing import Any, Final

from benchmarks.batch_ab import RATIO_FIGURE, round_lines, setup_text
from benchmarks.champion import NO_BOOSTER
from benchmarks.figures import (
    OURS_ROWS,
    PEERS,
    WORKER_GAIN,
    Results,
    Server,
    at_path,
    goal_rows,
    model_cells,
    number,
    server_figure,
    server_rows,
    step_at,
)
from benchmarks.goals import Goals
from benchmarks.model_bench import VARIANTS

COLUMNS: Final = {
    "ours": "ours",
    "ours_unbatched": "ours, no micro-batching",
    "ours_logged": "ours, prediction log on",
    "baseline": "baseline",
}
#: How far above ours' capacity the open-loop generator must be able to offer.
_GENERATOR_MARGIN: Final = 1.5
#: Cores other processes used in a load stage above which the report calls the machine shared.
_SHARED_CORES: Final = 0.1
WORKER_ROWS: Final = [
    ("max sustained single-car RPS (open loop)", "max_sustained_rps", 0),
    ("achieved RPS at the common rate", "at_common_rate.achieved_rps", 0),
    ("p50 at the common rate, ms", "at_common_rate.p50_ms", 2),
    ("p95 at the common rate, ms", "at_common_rate.p95_ms", 2),
    ("p99 at the common rate, ms", "at_common_rate.p99_ms", 2),
    ("server CPU at the common rate, cores", "at_common_rate.server_cpu_cores", 2),
]


def _table(head: list[str], rows: list[list[str]], align: str = "---:") -> list[str]:
    return [f"| {' | '.join(head)} |", "|---|" + f"{align}|" * (len(head) - 1)] + [
        f"| {' | '.join(row)} |" for row in rows
    ]


def stages(server: Server) -> list[dict[str, Any]]:
    """Every recorded Locust stage of one server (none for a peer)."""
    if "saturation" not in server:
        return []
    return [*server["ladder"], server["saturation"], *server["batch"].values(), server["mixed"]]


def _side_by_side(results: Results) -> list[str]:
    servers, rows = results["servers"], []
    names = [name for name in COLUMNS if name in servers]
    for label, key, digits in server_rows(results):
        known = {name: server_figure(results, servers[name], key) for name in names}
        ours, base = known["ours"], known.get("baseline")
        ratio = f"{ours / base:.{2 if digits else 1}f}×" if ours and base else "–"
        rows.append([label, *(number(value, digits) for value in known.values()), ratio])
    return _table(["metric", *(COLUMNS[name] for name in names), "ours / baseline"], rows)


def _ladder(servers: dict[str, Server]) -> list[str]:
    names = [name for name in COLUMNS if name in servers]
    rates = sorted({step["offered_rps"] for n in names for step in servers[n]["ladder"]})

    def cell(step: dict[str, Any] | None) -> str:
        if step is None:
            return "–"
        return f"{step['rps']:,.0f} / {step['p95_ms']:.2f}{'' if step['sustained'] else ' ✗'}"

    rows = [[f"{r:,.0f}", *(cell(step_at(servers[n], r)) for n in names)] for r in rates]
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
                    *(number(step[key]) for key in ("offered_rps", "achieved_rps")),
                    f"{step['requests']:,} / {step['failures']:,}",
                    *(number(step[f"p{p}_ms"], 2) for p in (50, 95, 99)),
                    *(number(step[key], 2) for key in ("server_cpu_cores", "others_cpu")),
                    number(step["in_flight_mean"], 1),
                    f"{number(step['send_lag_p50_ms'], 2)} / {number(step['send_lag_p99_ms'], 2)}",
                    f"{number(step['floor']['p50_ms'], 2)} / {number(step['floor']['p99_ms'], 2)}",
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
            *(number(step[key]) for key in ("offered_rps", "achieved_rps")),
            f"{step['requests']:,} / {step['failures']:,}",
            *(number(step[f"p{p}_ms"], 2) for p in (50, 95, 99)),
            number(step["server_cpu_cores"], 2),
            number(step["in_flight_mean"], 1),
        ]
        for step in curve["steps"]
    ]
    head = ["share", "offered", "achieved", "requests / failed", "p50 ms", "p95 ms", "p99 ms"]
    return _table([*head, "server cores", "in flight"], rows)


def _ours_only(results: Results, rows: list[tuple[str, str, int]], server: Server) -> list[str]:
    cells = [[label, number(server_figure(results, server, key), d)] for label, key, d in rows]
    return _table(["figure", "value"], cells)


def _workers(workers: dict[str, Any]) -> list[str]:
    rows = [
        [label, *(number(at_path(workers[n], key), digits) for n in ("1", "2"))]
        for label, key, digits in WORKER_ROWS
    ]
    return _table(["figure", "WORKERS=1", "WORKERS=2"], rows)


def _model(results: Results) -> list[str]:
    cells = model_cells(results)
    sizes = sorted({rows for _, rows in cells})
    rows, notes, missing = [], [], []

    def us_per_row(cell: dict[str, Any] | None, rows: int) -> str:
        return number(cell["stats"]["median"] / rows * 1e6, 2) if cell else "–"

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


def _ours_sections(results: Results, ours: Server, goals: Goals) -> list[str]:
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
    if found := results.get("batch_interleaved"):
        heading = "## 1,000-car batches, ours and the baseline in interleaved rounds"
        if "error" in found:
            lines += [heading, "", f"Not measured: {found['error']}", ""]
        else:
            lines += [
                heading,
                "",
                f"{setup_text(found)} The batch goals read ours' median rows/s and the median of"
                " ours over the baseline per round (the side-by-side row's ratio is that of the"
                " medians).",
                "",
                *round_lines(found, goals.target_of(RATIO_FIGURE)),
                "",
            ]
    if workers := ours.get("workers"):
        lines += [
            "## Workers per core (ours, both pinned to one core)",
            "",
            f"The same open-loop ladder, and one step at {number(workers['common_rate_rps'])} "
            "req/s (the same schedule) for both. **Recommended: WORKERS = "
            f"{workers['recommended_per_core']} per core** (2 only if they sustain ≥ "
            f"{WORKER_GAIN:g}× one worker's rate with p95 at most {WORKER_GAIN:g}× as high).",
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
                *(number(at_path(s, "open_loop_ladder.max_sustained_rps")) for s in (peer, ours)),
                *(number(at_path(s, at), 2) for s in (peer, ours)),
                f"{parity['max_relative_diff']:.1e} over {parity['cars']} cars",
                number(server_figure(results, peer, "cold_start_s"), 1),
                number(peer["memory_after_load"]["max_worker_rss_mb"]),
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
    limited = goals.generator_limited
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
        if limited.busy(stage["loadgen_cpu"])
    )
    busy_note = f"Load generator at ≥ {limited.max_cpu * 100:.0f} % of its core in: {busy}. Where "
    busy_note += "the server's core was not also busy, the figure is a lower bound set by Locust.\n"
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
        f"their schedule (⚠ where its median exceeds {limited.max_lag_share:.0%} of the median "
        f"latency, or the generator used ≥ {limited.max_cpu:.0%} of its core: the figure is "
        "partly the generator's). /health: the floor sent beside each step."
        + _ceiling_note(servers),
        "",
        *_open_loop_ladder(servers),
        "",
        "## Locust single-car ladder (✗ = not sustained)",
        "",
        *_ladder(servers),
        "",
        *_ours_sections(results, ours, goals),
        *_peers(results),
        "## Model level: µs per row (median call time / rows; one thread, one core)",
        "",
        "Small batches take different held-out cars call after call (`--distinct-cars`, "
        "1,000 by default, in batches of the size; cars timed again read faster: the branch "
        "predictor has learnt their walk through the trees).",
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
