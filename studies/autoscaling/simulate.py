"""The HPA's controller (`hpa`) run over a traffic profile against one pod's curve, summarised.

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
"""

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from studies.autoscaling.curve import PodCurve, slow_share
from studies.autoscaling.hpa import CPU, Controller, Fleet, HpaSpec, Metric

#: Pod quantities a metric can read; the Pods metrics are recognised by name.
QUANTITIES = ("p95", "cpu", "in_flight")


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
    """The simulation's clock: its step, the HPA's sync, a pod's start, each metric's window."""

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
