"""The simulation's report: one table per profile, the inputs it rests on, one plot per profile."""

from pathlib import Path
from typing import Any

import numpy as np

from studies.autoscaling.curve import PodCurve
from studies.autoscaling.hpa import HpaSpec


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


def describe(hpa: HpaSpec) -> str:
    """The HPA in one line: replicas, metrics and targets, behaviour."""

    def rules(r: Any) -> str:
        policies = ", ".join(f"{p.type} {p.value}/{p.period_seconds}s" for p in r.policies)
        return f"window {r.stabilization_window_seconds} s, {r.select_policy} of [{policies}]"

    metrics = ", ".join(f"{m.name} {m.target:g}" for m in hpa.metrics)
    return (
        f"{hpa.min_replicas}–{hpa.max_replicas} pods; {metrics}; scale-up {rules(hpa.scale_up)}; "
        f"scale-down {rules(hpa.scale_down)}"
    )
