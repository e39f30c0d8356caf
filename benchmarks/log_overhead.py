"""The prediction log's cost, settled by repetition: log off, on, and sampled, in turn.

`make bench` compares the log on and off once per run, and two runs disagreed (0.52× and 1.31×
in one, 1.01× and 0.92× in the next): one ladder per variant cannot tell a cost from the
machine's noise. This runs three `car-serve` workers side by side on the server core (the
idle ones cost next to nothing): `off` (no log), `on` (every answer logged) and `sampled`
(`PREDICTION_LOG_SAMPLE`, a tenth by default). Each round takes every variant in turn, in an
order rotated per round, through the same open-loop ladder (Poisson arrivals, one seed), whose
highest step answered in full at p95 ≤ 100 ms is the variant's max sustained rate, then through
one fixed-rate run at half of `off`'s first capacity (p50/p95/p99). The generator runs on the
other core. It prints and writes (`--out`, JSON and Markdown) each variant's figures per round,
their medians and ranges, and the per-round ratios to `off`: a cost is real when the ratios
stay on one side of 1 in every round, beyond the spread `off` shows against itself.

    python -m benchmarks.log_overhead --rounds 5 --out benchmarks/results/log/DATE-vm
"""

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any, Final

from benchmarks.champion import held_out_rows, request_bodies
from benchmarks.openloop import predict_target, run_streams
from benchmarks.pair import write_pair
from benchmarks.servers import LOADGEN_CORE
from benchmarks.shadow_overhead import MAX_P95_MS, start

#: Fine near our capacity (about 3,000 single cars/s on one core): a 10% cost is a step or two.
LADDER: Final = (500, 1000, 1500, 2000, 2250, 2500, 2750, 3000, 3250, 3500, 3750, 4000)
#: The generator's share of its core at which a capacity is its, not the server's (as `make
#: bench` flags a step).
GENERATOR_BOUND: Final = 0.9
RESULTS: Final = Path(__file__).with_name("results") / "log"


def _log_lines(folder: Path) -> int:
    """Lines the prediction log wrote under `folder` (every segment, compressed or not)."""
    import gzip

    lines = 0
    for path in folder.rglob("*"):
        if path.is_file():
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rb") as handle:
                lines += sum(1 for _ in handle)
    return lines


def capacity(url: str, bodies: list[bytes], step_s: float) -> dict[str, Any]:
    """The ladder: the highest step answered in full at p95 ≤ `MAX_P95_MS`, and that step."""
    target, best = predict_target(bodies), {"rate": 0, "step": None}
    for rate in LADDER:
        figures = asyncio.run(run_streams(url, [(target, rate)], step_s))
        step = figures["predict"]
        if step["failures"] or step["achieved_rps"] < 0.95 * rate or step["p95_ms"] > MAX_P95_MS:
            break
        best = {"rate": rate, "step": step, "loadgen_cpu": figures["loadgen_cpu"]}
    return best


def measure(
    model_dir: Path, bodies: list[bytes], *, rounds: int, seconds: float, step_s: float, sample: str
) -> dict[str, Any]:
    """Every variant through the ladder and the fixed-rate run, `rounds` times, in turn."""
    os.sched_setaffinity(0, {LOADGEN_CORE})
    logs = Path(tempfile.mkdtemp(prefix="log-overhead-"))
    settings = {
        "off": {},
        "on": {"PREDICTION_LOG_DIR": str(logs / "on")},
        "sampled": {"PREDICTION_LOG_DIR": str(logs / "sampled"), "PREDICTION_LOG_SAMPLE": sample},
    }
    servers = {name: start(model_dir, **env) for name, env in settings.items()}
    names = list(servers)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    fixed_rate = 0.0
    try:
        for round_ in range(rounds):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order:
                url = servers[name][1]
                top = capacity(url, bodies, step_s)
                if not fixed_rate:
                    fixed_rate = max(top["rate"], LADDER[0]) / 2
                figures = asyncio.run(
                    run_streams(url, [(predict_target(bodies), fixed_rate)], seconds)
                )
                runs[name].append(
                    {"round": round_, "max_sustained_rps": top["rate"], "fixed": figures["predict"]}
                    | {"capacity_loadgen_cpu": top.get("loadgen_cpu")}
                )
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait()
    written = {name: _log_lines(logs / name) for name in ("on", "sampled")}
    return {"fixed_rate_rps": fixed_rate, "runs": runs, "log_lines": written} | summary(runs)


def summary(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians and ranges per variant, and the per-round ratios of each variant to `off`."""
    figures = {
        "max_sustained_rps": lambda run: run["max_sustained_rps"],
        "p50_ms": lambda run: run["fixed"]["p50_ms"],
        "p95_ms": lambda run: run["fixed"]["p95_ms"],
        "p99_ms": lambda run: run["fixed"]["p99_ms"],
    }
    medians: dict[str, dict[str, float]] = {}
    ranges: dict[str, dict[str, list[float]]] = {}
    ratios: dict[str, dict[str, list[float]]] = {}
    for name, done in runs.items():
        values = {figure: [read(run) for run in done] for figure, read in figures.items()}
        medians[name] = {figure: statistics.median(v) for figure, v in values.items()}
        ranges[name] = {figure: [min(v), max(v)] for figure, v in values.items()}
        if name != "off":
            ratios[name] = {
                figure: [
                    read(run) / read(base) if read(base) else float("nan")
                    for run, base in zip(done, runs["off"], strict=True)
                ]
                for figure, read in figures.items()
            }
    return {"median": medians, "range": ranges, "ratio_to_off": ratios}


def markdown(results: dict[str, Any]) -> str:
    """The results as a short report."""
    rounds = len(results["runs"]["off"])
    lines = [
        f"# Prediction log cost, {results['date']} on {results['host']}",
        "",
        f"Machine: {os.cpu_count()} CPUs; three car-serve workers on core 0 side by side, the"
        f" generator on core 1. {rounds} rounds, variants in rotated order; ladder steps of"
        f" {results['step_s']:g} s (p95 ≤ {MAX_P95_MS:g} ms, ≥ 95% answered), fixed runs of"
        f" {results['seconds']:g} s at {results['fixed_rate_rps']:g} req/s. Log lines written:"
        f" on {results['log_lines']['on']:,}, sampled ({results['sample']}) "
        f"{results['log_lines']['sampled']:,}. Took {results['took_s']:.0f} s.",
        "",
        "⚠: rounds whose capacity step held the ladder's top or used ≥ 90% of the generator's"
        " core; there the ratio of capacities is partly the generator's.",
        "",
        "| variant | max sustained rps: median (range) | p50 ms | p95 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, median in results["median"].items():
        spread = results["range"][name]["max_sustained_rps"]
        # The top step held, or the generator's core was full there: the figure is partly its.
        bound = sum(
            run["max_sustained_rps"] >= LADDER[-1]
            or (run.get("capacity_loadgen_cpu") or 0.0) >= GENERATOR_BOUND
            for run in results["runs"][name]
        )
        flag = f" ⚠ {bound} of {len(results['runs'][name])} generator-bound" if bound else ""
        lines.append(
            f"| {name} | {median['max_sustained_rps']:,.0f} ({spread[0]:,.0f}–{spread[1]:,.0f})"
            f"{flag} | {median['p50_ms']:.2f} | {median['p95_ms']:.2f} | {median['p99_ms']:.2f} |"
        )
    lines += ["", "Per round, each variant over `off` of the same round:", ""]
    lines += ["| variant | max sustained rps | p95 at the fixed rate |", "|---|---|---|"]
    for name, ratios in results["ratio_to_off"].items():
        rps = ", ".join(f"{value:.2f}" for value in ratios["max_sustained_rps"])
        p95 = ", ".join(f"{value:.2f}" for value in ratios["p95_ms"])
        lines.append(f"| {name} | {rps} | {p95} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print it, write it."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.log_overhead", description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=Path("data/model"))
    parser.add_argument("--rows", type=Path, default=Path("data/splits/test.parquet"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="fixed-rate run")
    parser.add_argument("--step-seconds", type=float, default=3.0, help="ladder step")
    parser.add_argument("--sample", default="0.1", help="PREDICTION_LOG_SAMPLE of `sampled`")
    parser.add_argument("--out", type=Path, default=RESULTS / f"{date.today()}-vm")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    bodies = request_bodies(held_out_rows(args.rows))
    started = time.monotonic()
    results = measure(
        args.model_dir,
        bodies,
        rounds=args.rounds,
        seconds=args.seconds,
        step_s=args.step_seconds,
        sample=args.sample,
    )
    results |= {
        "date": str(date.today()),
        "host": platform.node(),
        "seconds": args.seconds,
        "step_s": args.step_seconds,
        "sample": args.sample,
        "took_s": time.monotonic() - started,
    }
    write_pair(args.out, results, markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
