"""The drift-scale results as Markdown: the machine, then one row per window size.

Run: `python -m studies.drift_scale.report RESULTS.json [--compare EARLIER.json]` rewrites the
Markdown beside a results file (e.g. with a "before" measured by an earlier run).
"""

import argparse
import json
from pathlib import Path
from typing import Any

STAGES = ("read_window", "read_labels", "join_labels", "nannyml", "write_plots", "rest")


def _size(size: dict[str, Any]) -> str:
    if size["stopped_over_cap_gb"]:
        return f"stopped > {size['stopped_over_cap_gb']:g} GB in {size['stopped_in_stage']}"
    if size.get("stopped_after_s"):
        return f"stopped after {size['stopped_after_s']:g} s in {size['stopped_in_stage']}"
    if size["exit_code"] < 0:  # a signal from outside the study (a person, the OOM killer)
        stage = next((s for s in STAGES if s not in size["stages"]), "rest")
        return f"killed (signal {-size['exit_code']}) after {size['wall_s']:.0f} s in {stage}"
    if size["exit_code"] != 0:
        return f"failed (exit {size['exit_code']})"
    return f"{size['wall_s']:.1f} s, {size['peak_rss_mb']:,} MB"


def _row(size: dict[str, Any], before: str | None) -> str:
    window = size["window"]
    cells = [
        f"{window['records']:,}",
        f"{window['segments']}",
        f"{window['log_bytes'] / 1e6:,.0f}",
    ]
    if before is not None:
        cells.append(before)
    cells.append(_size(size))
    stages = size["stages"]
    cells += [f"{stages[s]['seconds']:.1f}" if s in stages else "–" for s in STAGES]
    return "| " + " | ".join(cells) + " |"


def markdown(report: dict[str, Any], before: dict[str, Any] | None = None) -> str:
    """The report; with `before` (an earlier run's report) its wall and RSS per size beside."""
    machine = report["machine"]
    earlier = {s["window"]["records"]: s for s in (before or {}).get("sizes", [])}
    head = ["records", "segments", "log MB"]
    if before is not None:
        head.append(f"before ({before['label']}): wall, peak RSS")
    head.append(f"{report['label']}: wall, peak RSS")
    head += [f"{s} s" for s in STAGES]
    lines = [
        f"# Drift job scale, {report['date']}, {report['label']} (commit {report['commit']}"
        f"{', uncommitted changes' if report['uncommitted_changes'] else ''})",
        "",
        f"Machine: {machine['host']}, {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['memory_gb']} GB RAM ({machine['available_gb_at_start']} GB available at "
        f"start), load average {machine['load_average_at_start']} at start, nice "
        f"{machine['nice']}, Python {machine['python']}. The machine was shared with other "
        "jobs: wall times are inflated by them; peak RSS (the process's `ru_maxrss`) is not.",
        "",
        "Reading path measured (git blob ids): "
        + ", ".join(f"`{m}` {b}" for m, b in report.get("reading_path", {}).items())
        + ".",
        "",
        f"Runs over {report['max_rss_gb']:g} GB resident are stopped. Per-stage seconds are "
        f"{report['label']}'s; `rest` is scoring the reference, the verdict and the summary.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---:|" * len(head),
    ]
    for size in report["sizes"]:
        records = size["window"]["records"]
        then = earlier.get(records)
        then_cell = None if before is None else (_size(then) if then else "not measured")
        lines.append(_row(size, then_cell))
    if before is not None:
        lines += [
            "",
            f"Before: {before['label']} (commit {before['commit']}), {before['date']}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write a results JSON's Markdown beside it, with an earlier run's figures (`--compare`)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("--compare", type=Path)
    args = parser.parse_args(argv)
    before = json.loads(args.compare.read_text()) if args.compare else None
    text = markdown(json.loads(args.results.read_text()), before)
    args.results.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
