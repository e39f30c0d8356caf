"""The HorizontalPodAutoscaler's replica calculation, as the Kubernetes controller does it.

`HpaSpec.from_yaml` reads the parts of an `autoscaling/v2` HorizontalPodAutoscaler that decide
replica counts (min/max, `Pods` metrics with an `AverageValue` target, the `Resource` cpu metric
with an `Utilization` target, `behavior`), with the API server's defaults filled in.
`Controller.sync` is one pass of the controller (`pkg/controller/podautoscaler/horizontal.go`,
`replica_calculator.go`; documented at
https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/):

* per metric: usage ratio = mean observed value / target; inside the tolerance (10 %, the
  `--horizontal-pod-autoscaler-tolerance` default, or `behavior.*.tolerance`) the metric asks
  for the current count, else for ceil(ratio × pods with a metric). Pods still pending are left
  out, and count as 0 on a scale-up; running pods without a metric yet count as 0 on a
  scale-up and as exactly at target on a scale-down; if that second look flips the direction or
  lands in the tolerance, the metric asks for no change. For cpu, a pod that is not ready counts
  as pending (the controller's cpu initialisation rule);
* several metrics: the largest count asked for;
* stabilisation: the recommendation is held between the smallest recommendation of the
  scale-up window and the largest of the scale-down window (default 0 s and 300 s);
* policies: a scale-up may not go past the limit of its policies, each computed from the
  replica count at the start of the policy's period (the current count minus the changes made
  within the period); `selectPolicy` Max takes the policy allowing the biggest change, Min the
  smallest, Disabled none; then the min/max replica clamp.

Simplified: no `behavior` means the documented default rules (the controller's older code path
for that case, 2× or +4 per sync and the 300 s window, allows the same); pod metrics are
passed in already averaged (every ready pod of an evenly balanced fleet reports the same
value); no Object/External metrics, no scale-to-zero, no readiness flapping.
"""

import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

#: The controller's `--horizontal-pod-autoscaler-tolerance` default.
DEFAULT_TOLERANCE = 0.1
#: `--horizontal-pod-autoscaler-downscale-stabilization` default, seconds.
DEFAULT_SCALE_DOWN_WINDOW_S = 300
#: Metric kind of the Resource cpu metric, next to the names of Pods metrics.
CPU = "cpu"

_SUFFIXES = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def quantity(text: str | float) -> float:
    """A Kubernetes quantity ("5m", "500m", "1", "0.01", "2k", "1Gi") as a float."""
    if isinstance(text, int | float):
        return float(text)
    text = text.strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * _SUFFIXES[suffix]
    return float(text)


class _Camel(msgspec.Struct, frozen=True, rename="camel"):
    pass


class Policy(_Camel, frozen=True):
    """One scaling policy: at most `value` pods (or percent) per `period_seconds`."""

    type: Literal["Pods", "Percent"]
    value: int
    period_seconds: int


class Rules(_Camel, frozen=True):
    """One direction of `behavior`, defaults filled in (see `HpaSpec.from_yaml`)."""

    stabilization_window_seconds: int
    select_policy: Literal["Max", "Min", "Disabled"]
    policies: tuple[Policy, ...]
    tolerance: float = DEFAULT_TOLERANCE


class Metric(_Camel, frozen=True):
    """A metric the HPA averages over its pods: `name` is `cpu` or the Pods metric's name."""

    name: str
    target: float  # AverageValue of a Pods metric; for cpu a utilisation fraction (0.6 = 60 %)


#: API defaults (`SetDefaults_HorizontalPodAutoscalerBehavior`, `GenerateHPAScale*Rules`).
SCALE_UP_DEFAULT = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ],
}
SCALE_DOWN_DEFAULT = {
    "stabilizationWindowSeconds": DEFAULT_SCALE_DOWN_WINDOW_S,
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}


@dataclass(frozen=True)
class HpaSpec:
    """What decides an HPA's replica counts: bounds, metrics and targets, behaviour."""

    min_replicas: int
    max_replicas: int
    metrics: tuple[Metric, ...]
    scale_up: Rules
    scale_down: Rules

    @classmethod
    def from_yaml(cls, path: Path) -> "HpaSpec":
        """The first HorizontalPodAutoscaler in a (multi-document) YAML file."""
        documents = list(yaml.safe_load_all(path.read_text("utf-8")))
        hpa = next((d for d in documents if d and d.get("kind") == "HorizontalPodAutoscaler"), None)
        if hpa is None:
            raise ValueError(f"{path}: no HorizontalPodAutoscaler in it")
        return cls.from_dict(hpa["spec"])

    @classmethod
    def from_dict(cls, spec: dict[str, object]) -> "HpaSpec":
        """From an autoscaling/v2 `spec` mapping."""
        raw_metrics = spec.get("metrics") or [
            # The API's default when no metric is given: cpu at 80 %.
            {"type": "Resource", "resource": {"name": CPU, "target": {"averageUtilization": 80}}}
        ]
        assert isinstance(raw_metrics, list)
        behavior = spec.get("behavior") or {}
        assert isinstance(behavior, dict)
        min_replicas = spec.get("minReplicas", 1)
        max_replicas = spec["maxReplicas"]
        assert isinstance(min_replicas, int)
        assert isinstance(max_replicas, int)
        return cls(
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            metrics=tuple(_metric(m) for m in raw_metrics),
            scale_up=_rules(behavior.get("scaleUp"), SCALE_UP_DEFAULT),
            scale_down=_rules(behavior.get("scaleDown"), SCALE_DOWN_DEFAULT),
        )


def _rules(given: dict[str, object] | None, default: dict[str, object]) -> Rules:
    merged = {**default, **(given or {})}
    if "tolerance" in merged:
        merged["tolerance"] = quantity(merged["tolerance"])  # type: ignore[arg-type]
    return msgspec.convert(merged, Rules)


def _metric(raw: dict[str, Any]) -> Metric:
    kind = raw.get("type")
    # A ContainerResource cpu metric reads one container's utilisation: the server's, which is
    # what the capacity curve measured (the pod's proxy is left out of both).
    resource = {"Resource": "resource", "ContainerResource": "containerResource"}.get(str(kind))
    if resource is not None and raw[resource]["name"] == CPU:
        target = raw[resource]["target"]
        if "averageUtilization" not in target:
            raise ValueError(f"cpu metric needs a target averageUtilization: {raw}")
        return Metric(CPU, float(target["averageUtilization"]) / 100)
    if kind == "Pods":
        target = raw["pods"]["target"]
        if "averageValue" not in target:
            raise ValueError(f"Pods metric needs a target averageValue: {raw}")
        name = raw["pods"]["metric"]["name"]
        return Metric(str(name), quantity(target["averageValue"]))
    raise ValueError(
        f"unsupported metric (only Pods and (Container)Resource cpu are simulated): {raw}"
    )


@dataclass(frozen=True)
class Fleet:
    """What the controller sees at one sync.

    Attributes:
        replicas: The scale's current replica count.
        pending: Pods not yet running (scheduling, image pull).
        starting: Pods running but not ready: no metric yet, not ready for cpu.
        values: Metric name → the mean value reported by each ready pod.
    """

    replicas: int
    pending: int
    starting: int
    values: dict[str, float]

    @property
    def ready(self) -> int:
        """Pods neither pending nor starting."""
        return self.replicas - self.pending - self.starting


def metric_replicas(metric: Metric, fleet: Fleet, rules: tuple[Rules, Rules]) -> int:
    """The replica count one metric asks for (`calcPlainMetricReplicas`)."""
    up, down = rules
    ready, value = fleet.ready, fleet.values[metric.name]
    # The cpu rule marks running-but-not-ready pods unready; other metrics see them as missing.
    unready = fleet.pending + (fleet.starting if metric.name == CPU else 0)
    missing = 0 if metric.name == CPU else fleet.starting

    def within(ratio: float) -> bool:
        return 1 - down.tolerance <= ratio <= 1 + up.tolerance

    ratio = value / metric.target
    scale_up_with_unready = unready > 0 and ratio > 1
    if not scale_up_with_unready and missing == 0:
        return fleet.replicas if within(ratio) else math.ceil(ratio * ready)
    total, counted = value * ready, ready
    if missing:
        total += 0 if ratio > 1 else metric.target * missing
        counted += missing
    if scale_up_with_unready:
        counted += unready
    new_ratio = total / counted / metric.target
    if within(new_ratio) or (ratio < 1 < new_ratio) or (ratio > 1 > new_ratio):
        return fleet.replicas
    replicas = math.ceil(new_ratio * counted)
    if (new_ratio < 1 and replicas > fleet.replicas) or (
        new_ratio > 1 and replicas < fleet.replicas
    ):
        return fleet.replicas
    return replicas


@dataclass
class Controller:
    """One HPA's controller state: past recommendations and scale events, by time in seconds."""

    spec: HpaSpec
    recommendations: deque[tuple[float, int]] = field(default_factory=deque)
    events: list[tuple[float, int]] = field(default_factory=list)  # (time, replica change)

    def sync(self, now: float, fleet: Fleet) -> int:
        """The replica count the controller sets at `now` (`reconcileAutoscaler`)."""
        spec, current = self.spec, fleet.replicas
        if current > spec.max_replicas or current < spec.min_replicas:
            desired = min(max(current, spec.min_replicas), spec.max_replicas)
        else:
            rules = (spec.scale_up, spec.scale_down)
            wanted = max(metric_replicas(m, fleet, rules) for m in spec.metrics)
            desired = self._limit(now, current, self._stabilise(now, current, wanted))
        if desired != current:
            self.events.append((now, desired - current))
        return desired

    def _stabilise(self, now: float, current: int, wanted: int) -> int:
        up_window = self.spec.scale_up.stabilization_window_seconds
        down_window = self.spec.scale_down.stabilization_window_seconds
        # A recommendation counts while it is younger than the window (`After(cutoff)`).
        upper = max([r for t, r in self.recommendations if t > now - down_window] + [wanted])
        lower = min([r for t, r in self.recommendations if t > now - up_window] + [wanted])
        self.recommendations.append((now, wanted))
        while self.recommendations and self.recommendations[0][0] <= now - max(
            up_window, down_window
        ):
            self.recommendations.popleft()
        return min(max(current, lower), upper)

    def _limit(self, now: float, current: int, desired: int) -> int:
        spec = self.spec
        if desired > current:
            limit = max(_policy_limit(now, current, self.events, spec.scale_up, up=True), current)
            return min(desired, spec.max_replicas, limit)
        if desired < current:
            limit = min(
                _policy_limit(now, current, self.events, spec.scale_down, up=False), current
            )
            return max(desired, spec.min_replicas, limit)
        return desired


def _policy_limit(
    now: float, current: int, events: list[tuple[float, int]], rules: Rules, *, up: bool
) -> int:
    """`calculateScaleUpLimitWithScalingRules` / `calculateScaleDownLimitWithBehaviors`."""
    if rules.select_policy == "Disabled":
        return current
    proposals = []
    for policy in rules.policies:
        changed = sum(d for t, d in events if t > now - policy.period_seconds)
        at_start = current - changed
        if policy.type == "Pods":
            proposals.append(at_start + policy.value if up else at_start - policy.value)
        elif up:
            # Rounded up, so that a small fleet can always grow.
            proposals.append(math.ceil(at_start * (1 + policy.value / 100)))
        else:
            proposals.append(int(at_start * (1 - policy.value / 100)))
    # Max: the policy allowing the biggest change (the highest count up, the lowest down).
    return max(proposals) if (rules.select_policy == "Max") == up else min(proposals)
