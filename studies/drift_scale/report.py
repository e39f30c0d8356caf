"""The drift-scale results as Markdown: the machine, then one row per window size.

Run: `python -m studies.drift_scale.report RESULTS.json [--compare EARLIER.json]` rewrites the
Markdown beside a results file (e.g. with a "before" measured by an earlier run).
"""

import argparse
import json
from pathlib import Path
from typing import Any

STAGES = ("read_window", "read_labels", "join_labels", "nannyml", "write_plots", "rest")


def _outcome(size: dict[str, Any]) -> str:
    if size["stopped_over_cap_gb"]:
        return f"stopped > {size['stopped_over_cap_gb']:g} GB in {size['stopped_in_stage']}"
    if size.get("stopped_after_s"):
        return f"stopped after {size['stopped_after_s']:g} s in {size['stopped_in_stage']}"
    if size["exit_code"] < 0:  # a signal from outside the study (a person, the OOM killer)
        stage = next((s for s in STAGES if s not in size["stages"]), "rest")
        return f"killed (signal {-size['exit_code']}) after {size['wall_s']:.0f} s in {stage}"
    if size["exit_code"] != 0:
        return f"failed (exit {size['exit_code']})"
    return "done"


def _row(label: str, size: dict[str, Any]) -> str:
    window = size["window"]
    peak = size["peak_rss_mb"] or size["sampled_peak_rss_mb"]
    stages = size["stages"]
    cells = [
        f"{window['records']:,}",
        f"{window['log_bytes'] / 1e6:,.0f}",
        label,
        _outcome(size),
        f"{size['wall_s']:.0f}",
        f"{peak:,}" + ("" if size["peak_rss_mb"] else " (sampled)"),
        f"{size['window_chunks']:,} × {size['window_chunk_size']:,}"
        if "window_chunks" in size
        else "–",
    ]
    for stage in STAGES:
        done = stages.get(stage)
        if done is None:
            cells.append("–")
        elif "peak_rss_mb_after" in done:
            cells.append(f"{done['seconds']:.1f} s, {done['peak_rss_mb_after']:,} MB")
        else:
            cells.append(f"{done['seconds']:.1f} s")
    return "| " + " | ".join(cells) + " |"


def markdown(report: dict[str, Any], before: dict[str, Any] | None = None) -> str:
    """The report; with `before` (an earlier run's report) its rows beside each size's."""
    machine = report["machine"]
    earlier = {s["window"]["records"]: s for s in (before or {}).get("sizes", [])}
    head = ["records", "log MB", "run", "outcome", "wall s", "peak RSS MB", "chunks × rows"]
    head += [f"{s} (s, peak MB after)" if s != "rest" else "rest s" for s in STAGES]
    runs = [report] if before is None else [before, report]
    lines = [f"# Drift job scale, {report['date']}, {report['label']}", ""]
    for run in runs:
        lines.append(
            f"- {run['label']}: commit {run['commit']}"
            f"{' with uncommitted changes' if run['uncommitted_changes'] else ''}, {run['date']}; "
            "reading path (git blob ids) "
            + (", ".join(f"`{m}` {b}" for m, b in run.get("reading_path", {}).items()) or "—")
            + f"; load average at start {run['machine']['load_average_at_start']}."
        )
    lines += [
        "",
        f"Machine: {machine['host']}, {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['memory_gb']} GB RAM, nice {machine['nice']}, Python {machine['python']}. "
        "The machine was shared with other jobs: wall times are inflated by them (and differ "
        "between runs by the load, not only by the code); peak RSS (the process's `ru_maxrss`, "
        "or the parent's 0.2 s samples when the run was stopped) is not.",
        "",
        f"Runs over {report['max_rss_gb']:g} GB resident are stopped. `rest` is scoring the "
        "reference, the verdict and the summary; `start_up` (interpreter and imports) is in the "
        "wall time only. `chunks × rows`: the window's NannyML chunks and rows in each (the last "
        "also takes the remainder), from the job's summary; – where the run did not end or "
        "predates the bound on chunks.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---:|" * len(head),
    ]
    sizes = sorted({*earlier, *(s["window"]["records"] for s in report["sizes"])})
    now = {s["window"]["records"]: s for s in report["sizes"]}
    for records in sizes:
        for run, by_size in ((before, earlier), (report, now)):
            if run is not None and records in by_size:
                lines.append(_row(run["label"], by_size[records]))
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
