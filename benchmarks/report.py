"""The Markdown summary of one `benchmarks.run` results dict: goals, ratios, ladders, model."""

import math
from typing import Any, Final

_SERVERS: Final = ("ours", "ours_unbatched", "baseline")
_COLUMNS: Final = {
    "ours": "ours",
    "ours_unbatched": "ours, no micro-batching",
    "baseline": "baseline",
}
_LOADGEN_BUSY: Final = 0.9


def _num(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _ratio(ours: float | None, baseline: float | None, digits: int = 1) -> str:
    if not ours or not baseline:
        return "–"
    return f"{ours / baseline:.{digits}f}×"


def _step_at(steps: list[dict[str, Any]], rate: float) -> dict[str, Any] | None:
    return next((step for step in steps if step["offered_rps"] == rate), None)


def matched_rate(servers: dict[str, Any]) -> float | None:
    """The highest offered rate the baseline sustained (every server ran it)."""
    sustained = [s["offered_rps"] for s in servers["baseline"]["ladder"] if s["sustained"]]
    return max(sustained, default=None)


def goals(results: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(goal, target, measured, met) for each goal of the issue."""
    servers = results["servers"]
    ours, base = servers["ours"], servers["baseline"]
    rows: list[tuple[str, str, str, bool | None]] = []
    rps_ratio = (
        ours["max_sustained_rps"] / base["max_sustained_rps"] if base["max_sustained_rps"] else None
    )
    rows.append(
        (
            "Max sustained single-car RPS vs baseline",
            "≥ 5×",
            f"{_num(ours['max_sustained_rps'])} vs {_num(base['max_sustained_rps'])} "
            f"= {_ratio(ours['max_sustained_rps'], base['max_sustained_rps'])}",
            None if rps_ratio is None else rps_ratio >= 5,
        )
    )
    rate = matched_rate(servers)
    if rate is not None:
        ours_step, base_step = _step_at(ours["ladder"], rate), _step_at(base["ladder"], rate)
        if ours_step and base_step:
            rows.append(
                (
                    f"p95 at the same rate ({_num(rate)} req/s) vs baseline",
                    "≤ 1/5 (0.20×)",
                    f"{_num(ours_step['p95_ms'], 2)} vs {_num(base_step['p95_ms'], 2)} ms "
                    f"= {_ratio(ours_step['p95_ms'], base_step['p95_ms'], 2)}",
                    ours_step["p95_ms"] <= base_step["p95_ms"] / 5,
                )
            )
    batch = ours["batch"].get("1000")
    if batch:
        rows.append(
            (
                "Batch rows/s per worker, 1,000-car requests",
                "≥ 100,000",
                _num(batch["rows_per_s"]),
                batch["rows_per_s"] >= 100_000,
            )
        )
    model = results.get("model_bench", {}).get("results", {})
    if "onnx" in model and "lleaves" in model and "1" in model["lleaves"]:
        onnx1, lleaves1 = model["onnx"]["1"]["median_s"], model["lleaves"]["1"]["median_s"]
        rows.append(
            (
                "ONNX 1-car call vs lleaves",
                "≤ 2×",
                f"{onnx1 * 1e6:.1f} vs {lleaves1 * 1e6:.1f} µs = {onnx1 / lleaves1:.1f}×",
                onnx1 <= 2 * lleaves1,
            )
        )
    elif "onnx" in model:
        note = results.get("model_bench", {}).get("notes", {}).get("lleaves", "not measured")
        rows.append(("ONNX 1-car call vs lleaves", "≤ 2×", f"lleaves {note}", None))
    if "onnx" in model and "10000" in model["onnx"] and "10000" in model.get("pipeline", {}):
        onnx10k, pipe10k = (
            model["onnx"]["10000"]["median_s"],
            model["pipeline"]["10000"]["median_s"],
        )
        rows.append(
            (
                "10k-row batch: ONNX vs DataFrame pipeline",
                "≥ 2× faster",
                f"ONNX {onnx10k * 1e3:.0f} ms vs pipeline {pipe10k * 1e3:.0f} ms: "
                f"speed-up {pipe10k / onnx10k:.2f}×",
                pipe10k >= 2 * onnx10k,
            )
        )
    cold = min(ours["cold_starts_s"])
    rows.append(
        (
            "Cold start (process start → /ready 200)",
            "≤ 1 s",
            f"{_num(_median(ours['cold_starts_s']), 2)} s (median of "
            f"{len(ours['cold_starts_s'])}, best {cold:.2f} s)",
            _median(ours["cold_starts_s"]) <= 1.0,
        )
    )
    rss = ours["memory_after_load"]["max_worker_rss_mb"]
    rows.append(("RSS per worker after load", "≤ 150 MB", f"{rss:.0f} MB", rss <= 150))
    return rows


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _side_by_side(results: dict[str, Any]) -> list[str]:
    servers = results["servers"]
    names = [name for name in _SERVERS if name in servers]
    runs = [servers[name] for name in names]
    ours, base = servers["ours"], servers["baseline"]
    lines = [
        "| metric | " + " | ".join(_COLUMNS[name] for name in names) + " | ours / baseline |",
        "|---|" + "---:|" * (len(names) + 1),
    ]

    def row(label: str, pick: Any, digits: int = 0) -> None:
        values = [pick(run) for run in runs]
        cells = " | ".join(_num(value, digits) for value in values)
        ratio = _ratio(pick(ours), pick(base), 2 if digits else 1)
        lines.append(f"| {label} | {cells} | {ratio} |")

    def at(run: dict[str, Any], rate: float, key: str) -> float | None:
        step = _step_at(run["ladder"], rate)
        return step[key] if step else None

    row("max sustained single-car RPS", lambda s: s["max_sustained_rps"])
    row("saturation RPS (64 users, no wait)", lambda s: s["saturation"]["rps"])
    row("p95 at saturation, ms", lambda s: s["saturation"]["p95_ms"], 2)
    rate = matched_rate(servers)
    if rate is not None:
        for key in ("p50_ms", "p95_ms", "p99_ms"):
            row(
                f"{key[:3]} at {_num(rate)} req/s (baseline's max sustained), ms",
                lambda s, key=key: at(s, rate, key),
                2,
            )
    for size in ("100", "1000"):
        row(
            f"batch rows/s, {size}-car requests",
            lambda s, size=size: s["batch"][size]["rows_per_s"],
        )
        row(
            f"batch p95, {size}-car requests, ms",
            lambda s, size=size: s["batch"][size]["p95_ms"],
            1,
        )
    mixed_rate = results["setup"].get("mixed_rate_rps")
    row(f"mixed at {_num(mixed_rate)} req/s: achieved RPS", lambda s: s["mixed"]["rps"])
    row(f"mixed at {_num(mixed_rate)} req/s: p95, ms", lambda s: s["mixed"]["p95_ms"], 2)
    row("cold start (median), s", lambda s: _median(s["cold_starts_s"]), 2)
    row("RSS per worker after load, MB", lambda s: s["memory_after_load"]["max_worker_rss_mb"])
    row("USS per worker after load, MB", lambda s: s["memory_after_load"]["max_worker_uss_mb"])
    env = results.get("environment", {})
    if env.get("inference_only_mb"):
        lines.append(
            f"\nInstalled size (site-packages): inference-only environment "
            f"{env['inference_only_mb']:.0f} MB vs the full workspace environment "
            f"{env['full_mb']:.0f} MB ({env['inference_only_mb'] / env['full_mb']:.2f}×)."
        )
    return lines


def _ladder(results: dict[str, Any]) -> list[str]:
    servers = results["servers"]
    names = [name for name in _SERVERS if name in servers]
    rates = sorted({step["offered_rps"] for s in servers.values() for step in s["ladder"]})
    lines = [
        "| offered req/s | "
        + " | ".join(f"{_COLUMNS[name]}: achieved / p95 ms" for name in names)
        + " |",
        "|---:|" + "---:|" * len(names),
    ]
    for rate in rates:
        cells = []
        for name in names:
            step = _step_at(servers[name]["ladder"], rate)
            if step is None:
                cells.append("–")
                continue
            mark = "" if step["sustained"] else " ✗"
            cells.append(f"{step['rps']:,.0f} / {step['p95_ms']:.2f}{mark}")
        lines.append(f"| {rate:,.0f} | " + " | ".join(cells) + " |")
    return lines


def _model_table(model: dict[str, Any]) -> list[str]:
    sizes = list(next(iter(model["results"].values())).keys())
    lines = [
        "| runtime | " + " | ".join(f"{int(size):,} rows" for size in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for name, cells in model["results"].items():
        description = model["variants"].get(name, name)
        values = " | ".join(_num(cells[size]["us_per_row"], 2) for size in sizes)
        lines.append(f"| {description} | {values} |")
    return lines


def _profile(profile: dict[str, Any]) -> list[str]:
    lines = []
    for side in ("ours", "baseline"):
        summary = profile[side]
        top = ", ".join(
            f"{name} {value:.0f}" for name, value in list(summary["by_package_us"].items())[:6]
        )
        lines.append(
            f"- **{side}**: {summary['us_per_request']:.0f} µs per request under the profiler; "
            f"self time by package (µs/request): {top}."
        )
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown: goals first, then the side-by-side table and the details."""
    m = results["machine"]
    model = results["model"]
    lines = [
        f"# Benchmarks {results['started_at'][:10]} on {m['host']}",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['ram_gb']} GB RAM, Linux "
        f"{m['kernel']}, Python {m['python']}. Load average before / after: "
        f"{', '.join(f'{x:.2f}' for x in results['load_average_before'])} / "
        f"{', '.join(f'{x:.2f}' for x in results['load_average_after'])}. "
        f"Commit {results['commit']}, run took {results.get('duration_s', 0):.0f} s. "
        f"Scheduling group of the run: {results.get('autogroup') or 'n/a'}.",
        "",
        f"Model: **{model['label']}**"
        + (" — **STAND-IN, not the champion**" if model["standin"] else "")
        + ".",
        "",
        "Setup: each server runs **1 worker pinned to core 0** (`taskset -c 0`), Locust "
        "(headless, FastHttpUser) is **pinned to core 1**, all traffic on 127.0.0.1. Payloads "
        "are real held-out cars drawn at run time. Each step runs "
        f"{results['setup']['step_seconds']:.0f} s; statistics start once all users have "
        "spawned. A fixed-rate step is **sustained** when achieved ≥ 95 % of offered, "
        "failures < 1 % and p95 ≤ 100 ms; the ladder stops at the first step that is not.",
        "",
        "## Goals",
        "",
        "| goal | target | measured | met |",
        "|---|---|---|---|",
    ]
    for goal, target, measured, met in goals(results):
        verdict = "n/a" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {goal} | {target} | {measured} | {verdict} |")
    lines += ["", "## Side by side", "", *_side_by_side(results), ""]
    busy = [
        f"{name} at {step['offered_rps'] or 'max'} req/s"
        for name, server in results["servers"].items()
        for step in [*server["ladder"], server["saturation"]]
        if step["loadgen_cpu"] >= _LOADGEN_BUSY
    ]
    if busy:
        lines += [
            "Load generator at ≥ 90 % of its core in: " + "; ".join(busy) + ". Where the "
            "server's core was not also busy, the figure is a lower bound set by Locust.",
            "",
        ]
    lines += ["## Single-car ladder (✗ = not sustained)", "", *_ladder(results), ""]
    if "model_bench" in results:
        bench = results["model_bench"]
        lines += [
            "## Model level: µs per row (median call time / rows; one thread, one core)",
            "",
            *_model_table(bench),
            "",
            f"Parity: {', '.join(f'{k} {v:.1e}' for k, v in bench['parity'].items())}. "
            + " ".join(f"{k}: {v}." for k, v in bench["notes"].items()),
            "",
        ]
    if "profile" in results:
        lines += [
            "## Profile of one /predict (pyinstrument)",
            "",
            *_profile(results["profile"]),
            "",
        ]
    env = results.get("environment", {})
    if env:
        lines += [
            "## Installed size",
            "",
            f"Inference-only environment: {_num(env.get('inference_only_mb'))} MB "
            f"({', '.join(env.get('inference_only_packages', []))}); full workspace "
            f"environment: {_num(env['full_mb'])} MB.",
            "",
        ]
    return "\n".join(lines)
