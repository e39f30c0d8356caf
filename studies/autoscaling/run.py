"""How the HPA would scale the service: its algorithm driven by one pod's measured curve.

Inputs, each read from where it lives:

* one pod's p50/p95/p99, failures, cpu and mean in-flight requests against its request rate:
  `servers.ours.capacity_curve` of a benchmark results JSON (the harness's, `benchmarks/results/`:
  the newest that has one, or `--results`), and its measured cold starts
  (`servers.ours.cold_starts_s`, median);
* the HPA: an autoscaling/v2 HorizontalPodAutoscaler YAML (`k8s/base/hpa.yaml`, or `--hpa`),
  run by `studies.autoscaling.hpa` (the controller's algorithm);
* the latency SLO's threshold and budget: their one home, `inference.slo` (the recording rules
  and alerts are written from it); the p95 metric's lag: Prometheus' scrape and rule
  intervals (`monitoring/prometheus-kubernetes.yml`) and the rate window of the autoscaling
  recording rule; the overload behaviour: the server's `Settings`;
* the scenarios: `studies/autoscaling/scenarios.toml` (profiles, signals, what is not
  measured).

The model (`simulate`) and the controller (`hpa`) state what they simplify.

Writes `studies/autoscaling/results/autoscaling-<date>-<host>.{json,md}` and one PNG per profile.
Run: `uv run --frozen python -m studies.autoscaling.run [--results FILE] [--hpa FILE]`.
"""

import argparse
import json
import re
import socket
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from benchmarks.contract import RESULTS_DIR

from inference import slo as objectives
from studies.autoscaling.curve import MissingCurveError, PodCurve, find_results, load_curve
from studies.autoscaling.hpa import HpaSpec
from studies.autoscaling.report import describe, markdown, plot
from studies.autoscaling.simulate import Timing, profile_load, signal_spec, simulate, summarise

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).parent / "results"
SCENARIOS = Path(__file__).parent / "scenarios.toml"
HPA = REPO / "k8s" / "base" / "hpa.yaml"
RULES = REPO / "monitoring" / "rules"
PROMETHEUS = REPO / "monitoring" / "prometheus-kubernetes.yml"
#: The recording rules of the HPA's p95 signal.
AUTOSCALING_GROUP = "carprice-autoscaling"


def _rules(path: Path) -> list[dict[str, Any]]:
    groups = yaml.safe_load(path.read_text("utf-8"))["groups"]
    return [dict(rule, group=g["name"]) for g in groups for rule in g["rules"]]


def slo() -> tuple[float, float]:
    """(threshold in seconds, error budget) of the latency SLO, read at call time from its home."""
    return objectives.LATENCY_THRESHOLD_S, objectives.LATENCY_BUDGET


def _seconds(duration: str) -> float:
    units = {"ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", duration))


def prometheus_signal(
    rules_dir: Path = RULES, config: Path = PROMETHEUS
) -> tuple[str, float, float]:
    """(p95 metric name, window s, lag s) of the autoscaling rule as Prometheus runs it."""
    (rule,) = [r for r in _rules(rules_dir / "recording.yml") if r["group"] == AUTOSCALING_GROUP]
    (window,) = set(re.findall(r"\[(\w+)\]", rule["expr"]))
    settings = yaml.safe_load(config.read_text("utf-8"))["global"]
    lag = _seconds(settings["scrape_interval"]) + _seconds(settings["evaluation_interval"])
    return rule["record"], _seconds(window), lag


def main(argv: list[str] | None = None) -> int:
    """Simulate every profile under every signal and write the results."""
    parser = argparse.ArgumentParser(
        prog="python -m studies.autoscaling.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--results", type=Path, help="benchmark results JSON (default: newest)")
    parser.add_argument("--hpa", type=Path, default=HPA)
    parser.add_argument("--scenarios", type=Path, default=SCENARIOS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--profiles", nargs="*", help="profile names (default: all)")
    args = parser.parse_args(argv)

    from inference.settings import Settings

    try:
        results = args.results or find_results(RESULTS_DIR)
        raw_curve, cold_starts = load_curve(results)
    except MissingCurveError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    scenarios = tomllib.loads(args.scenarios.read_text("utf-8"))
    curve = PodCurve.from_results(raw_curve, Settings().shed_lag_ms / 1e3)
    hpa = HpaSpec.from_yaml(args.hpa)
    slo_s, budget = slo()
    p95_name, window, lag = prometheus_signal()
    step = float(scenarios["step_s"])
    timing = Timing(
        step_s=step,
        sync_period_s=float(scenarios["sync_period_s"]),
        pending_s=float(scenarios["schedule_allowance_s"]),
        starting_s=float(np.median(cold_starts)),
        windows={
            "p95": (window, lag),
            "in_flight": (window, lag),
            "cpu": (float(scenarios["cpu_metric_window_s"]), float(scenarios["cpu_metric_lag_s"])),
        },
        cpu_request=float(scenarios["cpu_request_cores"]),
    )
    specs = {
        name: signal_spec(hpa, signal, p95_name, curve)
        for name, signal in scenarios["signal"].items()
    }
    stamp = f"{datetime.now(tz=UTC):%Y-%m-%d}-{socket.gethostname()}"
    args.out.mkdir(parents=True, exist_ok=True)
    profiles, plots = {}, {}
    for name, profile in scenarios["profile"].items():
        if args.profiles and name not in args.profiles:
            continue
        load = profile_load(profile, curve.capacity_rps, step)
        runs = {s: simulate(load, spec, curve, timing, p95_name) for s, spec in specs.items()}
        profiles[name] = {
            s: summarise(
                run,
                curve=curve,
                slo_s=slo_s,
                budget=budget,
                step_s=step,
                spike=profile.get("spike"),
            )
            for s, run in runs.items()
        }
        plots[name] = f"autoscaling-{stamp}-{name}.png"
        plot(name, runs, curve=curve, slo_s=slo_s, step_s=step, target=args.out / plots[name])
    report = {
        "date": f"{datetime.now(tz=UTC):%Y-%m-%d}",
        "host": socket.gethostname(),
        "inputs": {
            "results": _shown(results),
            "hpa": _shown(args.hpa),
            "hpa_spec": describe(hpa),
            "capacity_rps": curve.capacity_rps,
            "cold_start_s": timing.starting_s,
            "schedule_allowance_s": timing.pending_s,
            "slo_s": slo_s,
            "slo_budget": budget,
            "prometheus_window_s": window,
            "prometheus_lag_s": lag,
            "cpu_window_s": timing.windows["cpu"][0],
            "cpu_lag_s": timing.windows["cpu"][1],
            "sync_period_s": timing.sync_period_s,
            "targets": {
                s: {m.name: round(m.target, 6) for m in spec.metrics} for s, spec in specs.items()
            },
        },
        "profiles": profiles,
        "plots": plots,
    }
    (args.out / f"autoscaling-{stamp}.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / f"autoscaling-{stamp}.md").write_text(markdown(report))
    print(markdown(report))
    return 0


def _shown(path: Path) -> str:
    """A path as the report names it: from the checkout's root when inside it."""
    resolved = path.resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else str(path)


if __name__ == "__main__":
    sys.exit(main())
