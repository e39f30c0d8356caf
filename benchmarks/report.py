"""The Markdown report of one `benchmarks.run` results dict: goals, side by side, ladder, model.

The goals and the rule for a sustained step are data, read from `benchmarks/goals.toml`.
"""

import functools
import math
import operator
import statistics
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from benchmarks.champion import NO_BOOSTER
from benchmarks.model_bench import VARIANTS
from benchmarks.peers import report as peers_report

GOALS_FILE: Final = Path(__file__).with_name("goals.toml")
COLUMNS: Final = {
    "ours": "ours",
    "ours_unbatched": "ours, no micro-batching",
    "ours_logged": "ours, prediction log on",
    "baseline": "baseline",
}
_LOADGEN_BUSY: Final = 0.9
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
    return next((step for step in server["ladder"] if step["offered_rps"] == rate), None)


def stages(server: Server) -> list[dict[str, Any]]:
    """Every recorded load stage of one server."""
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
    return [
        ("max sustained single-car RPS", "max_sustained_rps", 0),
        ("saturation RPS (64 users, no wait)", "saturation.rps", 0),
        ("p95 at saturation, ms", "saturation.p95_ms", 2),
        *((f"{p} {at}", f"{p}_at_baseline_rate", 2) for p in ("p50", "p95", "p99") if rate),
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


def server_figure(results: Results, server: Server, name: str) -> float | None:
    """A figure of one server: a path into its results, or one of the few computed here."""
    if name.endswith("_at_baseline_rate"):
        step = _step_at(server, baseline_rate(results["servers"])) or {}
        return step.get(name.removesuffix("_at_baseline_rate") + "_ms")
    if name in ("cold_start_s", "best_cold_start_s"):
        return (statistics.median if name == "cold_start_s" else min)(server["cold_starts_s"])
    return functools.reduce(operator.getitem, name.split("."), server)


def figures(results: Results) -> dict[str, float | None]:
    """What goals name: `<server>.<figure>` (see `server_figure`), `model.<variant>.<rows>`."""
    found = {
        f"{name}.{key}": server_figure(results, server, key)
        for name, server in results["servers"].items()
        for _, key, _ in server_rows(results)
    }
    for (variant, rows), cell in model_cells(results).items():
        found[f"model.{variant}.{rows}"] = cell["stats"]["median"] / rows * 1e6  # µs per row
    return found | peers_report.figures(results)


def goal_rows(results: Results, goals: Goals) -> list[tuple[str, str, str, bool | None]]:
    """(goal, target, measured, met; None when not measured) for each goal."""
    known, rows = figures(results), []
    for goal in goals.goal:
        target = f"{goal.comparison.replace('>=', '≥').replace('<=', '≤')} {goal.target:,g}"
        target += goal.unit if goal.unit == "×" else f" {goal.unit}"
        value, over = known.get(goal.figure), known.get(goal.over) if goal.over else 1.0
        if value is None or over is None:
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
    rates = sorted({step["offered_rps"] for s in servers.values() for step in s["ladder"]})

    def cell(step: dict[str, Any] | None) -> str:
        if step is None:
            return "–"
        return f"{step['rps']:,.0f} / {step['p95_ms']:.2f}{'' if step['sustained'] else ' ✗'}"

    rows = [[f"{r:,.0f}", *(cell(_step_at(servers[n], r)) for n in names)] for r in rates]
    return _table(["offered req/s", *(f"{COLUMNS[n]}: achieved / p95 ms" for n in names)], rows)


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


def markdown(results: Results, goals: Goals) -> str:
    """The results as Markdown: goals first, then the side-by-side table and the details."""
    servers, env, rule = results["servers"], results["environment"], goals.sustained
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
        "Setup: each server runs **1 worker pinned to core 0** (`taskset -c 0`), Locust "
        "(in-process, FastHttpUser) is **pinned to core 1**, all traffic on 127.0.0.1. Payloads "
        f"are real held-out cars drawn at run time. Each step runs "
        f"{results['setup']['step_seconds']:.0f} s; statistics start once all users have "
        f"spawned. A fixed-rate step is **sustained** when achieved ≥ {rule.min_achieved:.0%} "
        f"of offered, failures < {rule.max_failure_rate:.0%} and p95 ≤ {rule.max_p95_ms:g} ms; "
        "the ladder stops at the first step that is not.",
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
        "## Single-car ladder (✗ = not sustained)",
        "",
        *_ladder(servers),
        "",
        *peers_report.section(results),
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
