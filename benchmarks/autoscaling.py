"""How the HPA would scale the service: its algorithm driven by one pod's measured curve.

Inputs, each read from where it lives:

* one pod's p50/p95/p99, failures, cpu and mean in-flight requests against its request rate:
  `servers.ours.capacity_curve` of a benchmark results JSON (the newest that has one, or
  `--results`), and its measured cold starts (`servers.ours.cold_starts_s`, median);
* the HPA: an autoscaling/v2 HorizontalPodAutoscaler YAML (`k8s/base/hpa.yaml`, or `--hpa`),
  run by `benchmarks.hpa` (the controller's algorithm; its docstring lists what is simplified);
* the latency SLO: the `le` bucket of the latency SLI's recording rule and the error budget of
  the 1x burn alert (`monitoring/rules/`); the p95 metric's lag: Prometheus' scrape and rule
  intervals (`monitoring/prometheus-kubernetes.yml`) and the rate window of the autoscaling
  recording rule; the overload behaviour: the server's `Settings`;
* the scenarios: `benchmarks/autoscaling.toml` (profiles, signals, what is not measured).

Model, stated:

* every ready pod gets total load / ready pods (even balancing); a new pod is pending for the
  scheduling allowance, then runs for the measured cold start before it is ready; a removed pod
  leaves at once (pending ones first, then the newest);
* between measured steps, figures are interpolated in the rate; below the first step latency
  stays at the first step's and cpu and in-flight fall linearly to 0. Above the last step
  nothing is measured, so the model is the server's own overload design: while the rate is
  below the capacity the latency grows as in an M/M/1 queue from the last step
  ((1 - rho_last) / (1 - rho)); from the capacity on, the pod serves its capacity, sheds the
  rest (503: the admission control turns requests away while its event loop lags more than
  `shed_lag_ms`), and what it admits waits about that lag;
* a Prometheus-fed metric at time t is the request-weighted mean of the per-second values over
  the rule's rate window ending scrape + evaluation interval before t (the worst case of both);
  a pod has a metric once it has been ready that long. The cpu metric: the same with
  metrics-server's window and lag (the TOML);
* a minute is over the SLO when the share of its requests slower than the SLO threshold
  exceeds 5 % (its p95 is over) or the SLO's budget (its p99 is over, for "99 % within"),
  the share read off the interpolated p50/p95/p99 of each second (nothing beyond the p99);
  failed requests are counted apart.

Writes `benchmarks/results/autoscaling-<date>-<host>.{json,md}` and one PNG per profile.
Run: `uv run --frozen python -m benchmarks.autoscaling [--results FILE] [--hpa FILE]`.
"""

import argparse
import json
import math
import re
import socket
import sys
import tomllib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks.hpa import CPU, Controller, Fleet, HpaSpec, Metric

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
SCENARIOS = Path(__file__).parent / "autoscaling.toml"
HPA = REPO / "k8s" / "base" / "hpa.yaml"
RULES = REPO / "monitoring" / "rules"
PROMETHEUS = REPO / "monitoring" / "prometheus-kubernetes.yml"
#: The recording rules that define the latency SLI and the HPA's p95 signal.
SLI_RULE = "carprice:sli_latency_good:rate5m"
AUTOSCALING_GROUP = "carprice-autoscaling"
SLOW_BURN_ALERT = "CarPriceLatencyBudgetSlowBurn"
#: Pod quantities a metric can read; the Pods metrics are recognised by name.
QUANTITIES = ("p95", "cpu", "in_flight")


class MissingCurveError(LookupError):
    """No benchmark results JSON holds the capacity curve the simulation needs."""


@dataclass(frozen=True)
class PodCurve:
    """One pod's measured figures against its request rate, with the overload model above."""

    rate: np.ndarray
    p50_s: np.ndarray
    p95_s: np.ndarray
    p99_s: np.ndarray
    failures: np.ndarray
    cpu_cores: np.ndarray
    in_flight: np.ndarray
    capacity_rps: float
    cores: float
    overload_s: float

    @classmethod
    def from_results(cls, curve: dict[str, Any], overload_s: float) -> "PodCurve":
        steps = sorted(curve["steps"], key=lambda s: s["achieved_rps"])
        column = {k: np.array([s[k] for s in steps], dtype=float) for k in steps[0]}
        return cls(
            rate=column["achieved_rps"],
            p50_s=column["p50_ms"] / 1e3,
            p95_s=column["p95_ms"] / 1e3,
            p99_s=column["p99_ms"] / 1e3,
            failures=column["failures"] / np.maximum(column["requests"], 1),
            cpu_cores=column["server_cpu_cores"],
            in_flight=column["in_flight_mean"],
            capacity_rps=float(curve["capacity_rps"]),
            cores=float(curve["cores"]),
            overload_s=overload_s,
        )

    def at(self, rate: np.ndarray) -> dict[str, np.ndarray]:
        """Every figure at each per-pod rate (requests per second)."""
        rate = np.asarray(rate, dtype=float)
        last, capacity = self.rate[-1], self.capacity_rps
        above = rate > last
        rho_last = min(last / capacity, 0.999)
        # M/M/1 growth from the last step up to the capacity, then the shedding regime.
        growth = np.where(
            rate < capacity, (1 - rho_last) / np.maximum(1 - rate / capacity, 1e-9), np.inf
        )
        served = np.minimum(rate, max(capacity, last))
        out: dict[str, np.ndarray] = {}
        for name in ("p50_s", "p95_s", "p99_s"):
            measured = getattr(self, name)
            ceiling = max(measured[-1], self.overload_s)
            grown = np.minimum(measured[-1] * growth, ceiling)
            out[name] = np.where(above, grown, np.interp(rate, self.rate, measured))
        shed = np.where(rate > capacity, 1 - capacity / np.maximum(rate, 1e-9), 0.0)
        out["failures"] = np.where(
            above, np.maximum(self.failures[-1], shed), np.interp(rate, self.rate, self.failures)
        )
        zero_rate = np.concatenate([[0.0], self.rate])
        for name in ("cpu_cores", "in_flight"):
            measured = np.concatenate([[0.0], getattr(self, name)])
            per_request = measured[-1] / last
            out[name] = np.where(
                above,
                per_request
                * served
                * (out["p95_s"] / self.p95_s[-1] if name == "in_flight" else 1),
                np.interp(rate, zero_rate, measured),
            )
        out["cpu_cores"] = np.minimum(out["cpu_cores"], self.cores)
        return out


def slow_share(figures: dict[str, np.ndarray], threshold_s: float) -> np.ndarray:
    """Share of requests slower than `threshold_s`, read off the p50/p95/p99 of each row."""
    quantiles = np.stack([figures["p50_s"], figures["p95_s"], figures["p99_s"]], axis=-1)
    share = np.empty(len(quantiles))
    for i, row in enumerate(quantiles):
        # Nothing is known beyond the p99: at or above it, no request counts as slow.
        share[i] = (
            0.0
            if threshold_s >= row[-1]
            else 1 - np.interp(threshold_s, np.concatenate([[0.0], row]), [0.0, 0.5, 0.95, 0.99])
        )
    return share


def find_results(results_dir: Path) -> Path:
    """The newest benchmark results JSON with a capacity curve (names sort by date)."""
    for path in sorted(results_dir.glob("[0-9]*.json"), reverse=True):
        ours = json.loads(path.read_text("utf-8")).get("servers", {}).get("ours", {})
        if "capacity_curve" in ours:
            return path
    raise MissingCurveError(
        f"no results JSON in {results_dir} has servers.ours.capacity_curve (one pod's "
        "p95-vs-rate curve): run the benchmark first, or pass --results FILE"
    )


def load_curve(path: Path) -> tuple[dict[str, Any], list[float]]:
    """The capacity curve and the cold starts (seconds) of our server in a results JSON."""
    ours = json.loads(path.read_text("utf-8")).get("servers", {}).get("ours", {})
    missing = [k for k in ("capacity_curve", "cold_starts_s") if k not in ours]
    if missing:
        raise MissingCurveError(f"{path}: servers.ours has no {' or '.join(missing)}")
    return ours["capacity_curve"], list(ours["cold_starts_s"])


def _rules(path: Path) -> list[dict[str, Any]]:
    groups = yaml.safe_load(path.read_text("utf-8"))["groups"]
    return [dict(rule, group=g["name"]) for g in groups for rule in g["rules"]]


def slo(rules_dir: Path = RULES) -> tuple[float, float]:
    """(latency threshold in seconds, error budget) of the latency SLO, from the rules."""
    sli = next(r for r in _rules(rules_dir / "recording.yml") if r.get("record") == SLI_RULE)
    (threshold,) = set(re.findall(r'le="([^"]+)"', sli["expr"]))
    alert = next(r for r in _rules(rules_dir / "alerts.yml") if r.get("alert") == SLOW_BURN_ALERT)
    (budget,) = set(re.findall(r"\(1 \* ([0-9.]+)\)", alert["expr"]))
    return float(threshold), float(budget)


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


def quantity_of(metric: Metric, p95_name: str) -> str:
    """Which pod figure an HPA metric reads (the adapter may turn the rule's `:` into `_`)."""
    if metric.name == CPU:
        return "cpu"
    if metric.name.replace(":", "_") == p95_name.replace(":", "_"):
        return "p95"
    if metric.name in QUANTITIES:
        return metric.name
    raise ValueError(f"HPA metric {metric.name!r} is none of {CPU}, {p95_name}, in_flight")


def signal_spec(hpa: HpaSpec, signal: dict[str, Any], p95_name: str, curve: PodCurve) -> HpaSpec:
    """The HPA as one signal sees it: its kept metrics plus the added ones."""
    kept = [m for m in hpa.metrics if quantity_of(m, p95_name) in signal["keep"]]
    for added in signal.get("add", []):
        target = added["target"]
        if target == "matched":
            p95_target = next(m.target for m in hpa.metrics if quantity_of(m, p95_name) == "p95")
            target = float(curve.at(np.array([rate_at(curve, p95_target)]))[added["metric"]][0])
        kept.append(Metric(added["metric"], float(target)))
    if not kept:
        raise ValueError(f"signal {signal} keeps no metric of the HPA")
    return replace(hpa, metrics=tuple(kept))


def rate_at(curve: PodCurve, p95_s: float) -> float:
    """The per-pod rate at which the p95 first reaches `p95_s` (bisection on the model)."""
    low, high = 0.0, curve.capacity_rps
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (
            (middle, high)
            if curve.at(np.array([middle]))["p95_s"][0] < p95_s
            else (
                low,
                middle,
            )
        )
    return low


def profile_load(profile: dict[str, Any], capacity_rps: float, step_s: float) -> np.ndarray:
    """Offered requests per second at each step of a profile (TOML `[profile.*]`)."""
    minutes = np.arange(0, profile["minutes"] * 60, step_s) / 60
    load = np.zeros_like(minutes)
    if "points" in profile:
        at, share = np.array(profile["points"], dtype=float).T
        load += np.interp(minutes, at, share)
    if "daily" in profile:
        day = profile["daily"]
        phase = 2 * math.pi * (minutes / 60 - day["trough_hour"]) / 24
        load += day["low"] + (day["high"] - day["low"]) * (1 - np.cos(phase)) / 2
    if profile.get("noise"):
        rng = np.random.default_rng(profile.get("seed", 0))
        per_minute = rng.normal(1.0, profile["noise"], int(profile["minutes"]) + 1)
        load *= np.interp(minutes, np.arange(len(per_minute)), per_minute)
    return np.maximum(load, 0.0) * capacity_rps


@dataclass(frozen=True)
class Timing:
    step_s: float
    sync_period_s: float
    pending_s: float  # scheduling allowance
    starting_s: float  # measured cold start
    windows: dict[str, tuple[float, float]]  # quantity → (window s, lag s) of its metric
    cpu_request: float


def simulate(
    load: np.ndarray, spec: HpaSpec, curve: PodCurve, timing: Timing, p95_name: str
) -> dict[str, np.ndarray]:
    """Run the controller over a load profile; per-step series of the fleet."""
    controller = Controller(spec)
    step = timing.step_s
    created = [-math.inf] * spec.min_replicas  # creation time of each pod, oldest first
    n = len(load)
    per_pod = np.zeros(n)
    replicas = np.zeros(n, dtype=int)
    ready_pods = np.zeros(n, dtype=int)
    quantity = {m.name: quantity_of(m, p95_name) for m in spec.metrics}
    every = max(1, round(timing.sync_period_s / step))
    for i in range(n):
        now = i * step
        up = now - timing.pending_s - timing.starting_s
        ready = sum(c <= up for c in created)
        per_pod[i], replicas[i], ready_pods[i] = load[i] / ready, len(created), ready
        if i % every or i == 0:
            continue
        values = {}
        for name, what in quantity.items():
            window, lag = timing.windows[what]
            lo, hi = max(0, round((now - lag - window) / step)), max(1, round((now - lag) / step))
            figures = curve.at(per_pod[lo:hi])
            weights = np.maximum(per_pod[lo:hi], 1e-9)
            value = (
                figures["cpu_cores"] / timing.cpu_request
                if what == "cpu"
                else figures[f"{what}_s" if what == "p95" else what]
            )
            values[name] = float(np.average(value, weights=weights))
        # A pod reports once it has been ready for the longest metric lag (simplified: one lag).
        longest = max(lag for _, lag in timing.windows.values())
        pending = sum(c > now - timing.pending_s for c in created)
        reporting = sum(c <= up - longest for c in created)
        fleet = Fleet(len(created), pending, len(created) - pending - reporting, values)
        desired = controller.sync(now, fleet)
        if desired > len(created):
            created += [now] * (desired - len(created))
        elif desired < len(created):
            # Not-yet-ready pods go first, then the newest (the ReplicaSet's deletion order).
            created = created[:desired]
    return {"load": load, "per_pod": per_pod, "replicas": replicas, "ready": ready_pods}


def summarise(
    run: dict[str, np.ndarray],
    *,
    curve: PodCurve,
    slo_s: float,
    budget: float,
    step_s: float,
    spike: list[float] | None,
) -> dict[str, Any]:
    """The table's figures for one run (see the module docstring for "over the SLO")."""
    figures = curve.at(run["per_pod"])
    slow = slow_share(figures, slo_s)
    per_minute = max(1, round(60 / step_s))
    minutes = len(slow) // per_minute
    load = run["load"][: minutes * per_minute].reshape(minutes, per_minute)
    weighted = (slow[: minutes * per_minute].reshape(minutes, per_minute) * load).sum(1)
    minute_slow = weighted / np.maximum(load.sum(1), 1e-9)
    p95_over = minute_slow > 0.05
    changes = np.flatnonzero(np.diff(run["replicas"]))
    directions = np.sign(np.diff(run["replicas"])[changes])
    spiked = {}
    if spike is not None:
        # Minutes from the spike's start until its p95 stays within the SLO to the spike's end.
        start, end = (round(m) for m in spike)
        over = np.flatnonzero(p95_over[start:end])
        spiked["spike_absorbed_min"] = (
            0.0 if not len(over) else None if over[-1] == end - start - 1 else over[-1] + 1.0
        )
    return spiked | {
        "minutes_p95_over_slo": int(p95_over.sum()),
        "minutes_p99_over_slo": int((minute_slow > budget).sum()),
        "failed_share": float((run["load"] * figures["failures"]).sum() / run["load"].sum()),
        "pod_minutes": float(run["replicas"].sum() * step_s / 60),
        "scale_events": len(changes),
        "reversals": int((np.diff(directions) != 0).sum()),
        "max_pods": int(run["replicas"].max()),
    }


def plot(
    name: str,
    runs: dict[str, dict[str, np.ndarray]],
    *,
    curve: PodCurve,
    slo_s: float,
    step_s: float,
    target: Path,
) -> None:
    """Offered load, pods and the served p95 against the SLO over time, one line per signal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_load, ax_pods, ax_p95) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    first = next(iter(runs.values()))
    hours = len(first["load"]) * step_s > 4 * 3600
    scale = 3600 if hours else 60
    t = np.arange(len(first["load"])) * step_s / scale
    ax_load.plot(t, first["load"], color="black", lw=0.8)
    ax_load.set_ylabel("offered req/s")
    per_minute = max(1, round(60 / step_s))
    for signal, run in runs.items():
        (line,) = ax_pods.step(t, run["replicas"], where="post", label=f"{signal}: pods")
        ax_pods.step(t, run["ready"], where="post", ls=":", color=line.get_color())
        p95 = curve.at(run["per_pod"])["p95_s"] * 1e3
        minutes = len(p95) // per_minute
        p95_minute = p95[: minutes * per_minute].reshape(minutes, per_minute).max(1)
        ax_p95.step(
            t[::per_minute][:minutes],
            p95_minute,
            where="post",
            label=signal,
            color=line.get_color(),
        )
    ax_pods.set_ylabel("pods (dotted: ready)")
    ax_pods.legend(fontsize=8)
    ax_p95.axhline(slo_s * 1e3, color="red", ls="--", lw=1, label="SLO threshold")
    ax_p95.set_yscale("log")
    ax_p95.set_ylabel("served p95 ms (max per minute)")
    ax_p95.set_xlabel("hours" if hours else "minutes")
    ax_p95.legend(fontsize=8)
    ax_load.set_title(f"HPA simulation: {name}")
    for ax in (ax_load, ax_pods, ax_p95):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)


def markdown(report: dict[str, Any]) -> str:
    """The comparison as one table per profile, with the inputs it rests on."""
    inputs = report["inputs"]
    lines = [
        f"# HPA simulation {report['date']} on {report['host']}",
        "",
        f"Curve: `{inputs['results']}` (one pod: {inputs['capacity_rps']:.0f} req/s capacity, "
        f"cold start {inputs['cold_start_s']:.2f} s + {inputs['schedule_allowance_s']:.0f} s "
        f"scheduling allowance). HPA: `{inputs['hpa']}`: {inputs['hpa_spec']}. "
        f"SLO: {1 - inputs['slo_budget']:.0%} of /predict within {inputs['slo_s'] * 1e3:g} ms. "
        f"p95/in-flight metric: {inputs['prometheus_window_s']:.0f} s window, "
        f"{inputs['prometheus_lag_s']:.0f} s lag; cpu: {inputs['cpu_window_s']:.0f} s window, "
        f"{inputs['cpu_lag_s']:.0f} s lag. Sync every {inputs['sync_period_s']:.0f} s. "
        f"Targets per signal: {inputs['targets']}.",
        "",
        "Minutes over the SLO: minutes whose p95 (or p99: the SLO's own measure) exceeds the "
        "threshold. Scale events: changes of the replica count; reversals: an up after a down "
        "or a down after an up.",
    ]
    for profile, rows in report["profiles"].items():
        lines += [
            "",
            f"## {profile}",
            "",
            "| signal | min p95 > SLO | min p99 > SLO | failed | pod-minutes | scale events | "
            "reversals | max pods | spike absorbed (min) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for signal, row in rows.items():
            absorbed = row.get("spike_absorbed_min", "–")
            lines.append(
                f"| {signal} | {row['minutes_p95_over_slo']} | {row['minutes_p99_over_slo']} | "
                f"{row['failed_share']:.2%} | {row['pod_minutes']:.0f} | {row['scale_events']} | "
                f"{row['reversals']} | {row['max_pods']} | "
                f"{'not absorbed' if absorbed is None else absorbed} |"
            )
        lines += ["", f"![{profile}]({report['plots'][profile]})"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Simulate every profile under every signal and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help="benchmark results JSON (default: newest)")
    parser.add_argument("--hpa", type=Path, default=HPA)
    parser.add_argument("--scenarios", type=Path, default=SCENARIOS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--profiles", nargs="*", help="profile names (default: all)")
    args = parser.parse_args(argv)

    from inference.settings import Settings

    try:
        results = args.results or find_results(RESULTS)
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
            "results": str(results),
            "hpa": str(args.hpa),
            "hpa_spec": _describe(hpa),
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


def _describe(hpa: HpaSpec) -> str:
    def rules(r: Any) -> str:
        policies = ", ".join(f"{p.type} {p.value}/{p.period_seconds}s" for p in r.policies)
        return f"window {r.stabilization_window_seconds} s, {r.select_policy} of [{policies}]"

    metrics = ", ".join(f"{m.name} {m.target:g}" for m in hpa.metrics)
    return (
        f"{hpa.min_replicas}–{hpa.max_replicas} pods; {metrics}; scale-up {rules(hpa.scale_up)}; "
        f"scale-down {rules(hpa.scale_down)}"
    )


if __name__ == "__main__":
    sys.exit(main())
