"""The prediction log's repeated comparison: per-round ratios to `off`, and the report's flags."""

from typing import Any

import pytest

from benchmarks import log_overhead


def _run(round_: int, rps: float, p95: float) -> dict[str, Any]:
    fixed = {"p50_ms": p95 / 2, "p95_ms": p95, "p99_ms": p95 * 2}
    return {"round": round_, "max_sustained_rps": rps, "fixed": fixed}


RUNS = {
    "off": [_run(0, 3000, 2.0) | {"capacity_loadgen_cpu": 0.95}, _run(1, 3250, 2.5)],
    "on": [_run(0, 2750, 3.0), _run(1, 3250, 2.5)],
    "sampled": [_run(0, 3000, 2.0), _run(1, 4000, 2.0)],
}


def test_ratios_pair_each_round_with_offs_same_round() -> None:
    """Round 0 over round 0, round 1 over round 1: not medians over medians."""
    summary = log_overhead.summary(RUNS)
    assert summary["ratio_to_off"]["on"]["max_sustained_rps"] == pytest.approx([2750 / 3000, 1.0])
    assert summary["ratio_to_off"]["on"]["p95_ms"] == pytest.approx([1.5, 1.0])
    assert "off" not in summary["ratio_to_off"]
    assert summary["median"]["off"]["max_sustained_rps"] == 3125
    assert summary["range"]["sampled"]["max_sustained_rps"] == [3000, 4000]


def test_report_flags_a_capacity_the_generator_bounded() -> None:
    """The top step held, or the generator's core full at the capacity step: flagged per round."""
    results = {
        "runs": RUNS,
        "date": "2026-12-07",
        "host": "vm",
        "step_s": 3.0,
        "seconds": 10.0,
        "fixed_rate_rps": 1500.0,
        "log_lines": {"on": 10, "sampled": 1},
        "sample": "0.1",
        "took_s": 60.0,
    } | log_overhead.summary(RUNS)
    lines = log_overhead.markdown(results).splitlines()
    # Each variant's first row: the table of figures (the ratios' table comes after).
    rows = {name: next(x for x in lines if x.startswith(f"| {name} |")) for name in RUNS}
    assert "⚠ 1 of 2 generator-bound" in rows["sampled"]  # 4,000: the ladder's top
    assert "⚠ 1 of 2 generator-bound" in rows["off"]  # its generator at 0.95 of a core
    assert "generator-bound" not in rows["on"]
    assert "| on | 0.92, 1.00 | 1.50, 1.00 |" in log_overhead.markdown(results)
