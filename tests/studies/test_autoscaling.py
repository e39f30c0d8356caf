"""The HPA simulation: the controller's algorithm on cases worked by hand from the Kubernetes docs.

The curve is synthetic (an M/M/1-like pod of 1,000 req/s), written in tmp_path as the
benchmark writes it; nothing here reads measured figures.
"""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from studies.autoscaling import run
from studies.autoscaling.curve import MissingCurveError, PodCurve, find_results, load_curve
from studies.autoscaling.hpa import CPU, Controller, Fleet, HpaSpec, metric_replicas, quantity
from studies.autoscaling.simulate import Timing, simulate

from inference import slo

REPO_ROOT = Path(__file__).resolve().parents[2]
P95 = "carprice_request_duration_seconds_p95_per_pod"
CAPACITY = 1000.0


def curve_json(path: Path) -> Path:
    """A results JSON with an M/M/1-like capacity curve and cold starts."""
    steps = []
    for share in np.arange(0.1, 1.01, 0.1):
        rate, slow = share * CAPACITY, 1 / (1 - 0.9 * share)
        steps.append(
            {
                "share": share,
                "offered_rps": rate,
                "achieved_rps": rate,
                "requests": int(rate * 10),
                "failures": 0,
                "p50_ms": 1.0 * slow,
                "p95_ms": 3.0 * slow,
                "p99_ms": 4.0 * slow,
                "server_cpu_cores": 0.9 * share,
                "in_flight_mean": rate * 1.5e-3 * slow,
            }
        )
    curve = {"arrivals": "poisson", "workers": 1, "cores": 1, "capacity_rps": CAPACITY}
    ours = {"capacity_curve": curve | {"steps": steps}, "cold_starts_s": [1.5, 2.0, 2.5]}
    path.write_text(json.dumps({"servers": {"ours": ours}}))
    return path


def hpa_yaml(path: Path, behavior: str = "", metrics: str = "") -> Path:
    """An autoscaling/v2 HPA with a p95 Pods metric ("7m") and a cpu metric (50 %).

    `behavior` and `metrics` are YAML for the spec's fields of those names.
    """
    default_metrics = [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": P95},
                "target": {"type": "AverageValue", "averageValue": "7m"},
            },
        },
        {
            "type": "Resource",
            "resource": {"name": CPU, "target": {"type": "Utilization", "averageUtilization": 50}},
        },
    ]
    hpa_spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "car-price"},
        "minReplicas": 2,
        "maxReplicas": 10,
        "metrics": yaml.safe_load(metrics) if metrics else default_metrics,
    }
    if behavior:
        hpa_spec["behavior"] = yaml.safe_load(behavior)
    document = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler"}
    path.write_text(yaml.safe_dump(document | {"metadata": {"name": "x"}, "spec": hpa_spec}))
    return path


def spec(tmp_path: Path, behavior: str = "", metrics: str = "") -> HpaSpec:
    return HpaSpec.from_yaml(hpa_yaml(tmp_path / "hpa.yaml", behavior, metrics))


def ready(replicas: int, **values: float) -> Fleet:
    return Fleet(replicas, 0, 0, dict(values))


@pytest.mark.parametrize(
    ("text", "value"),
    [("5m", 0.005), ("500m", 0.5), ("1", 1.0), ("0.01", 0.01), ("2k", 2000.0), ("1Ki", 1024.0)],
)
def test_quantity_strings_parse_as_kubernetes_reads_them(text: str, value: float) -> None:
    """Kubernetes quantity strings ("5m" = 0.005) become floats."""
    assert quantity(text) == pytest.approx(value)


def test_hpa_file_is_read_with_the_api_defaults_for_missing_behavior(tmp_path: Path) -> None:
    """Metrics and targets come from the file; an absent `behavior` gets the documented defaults."""
    hpa = spec(tmp_path)
    assert (hpa.min_replicas, hpa.max_replicas) == (2, 10)
    assert [(m.name, m.target) for m in hpa.metrics] == [(P95, 0.007), (CPU, 0.5)]
    assert hpa.scale_down.stabilization_window_seconds == 300
    assert hpa.scale_up.stabilization_window_seconds == 0
    assert {(p.type, p.value, p.period_seconds) for p in hpa.scale_up.policies} == {
        ("Pods", 4, 15),
        ("Percent", 100, 15),
    }


def test_unsupported_metric_is_refused(tmp_path: Path) -> None:
    """An External metric cannot be simulated and says so."""
    external = (
        '[{type: External, external: {metric: {name: q}, target: {type: Value, value: "1"}}}]'
    )
    with pytest.raises(ValueError, match="unsupported metric"):
        spec(tmp_path, metrics=external)


def test_no_change_within_the_tolerance(tmp_path: Path) -> None:
    """A usage ratio within 10 % of 1 keeps the count; just outside it scales by ceil."""
    p95 = spec(tmp_path).metrics[0]
    rules = (spec(tmp_path).scale_up, spec(tmp_path).scale_down)
    assert metric_replicas(p95, ready(4, **{P95: 0.007 * 1.09}), rules) == 4
    assert metric_replicas(p95, ready(4, **{P95: 0.007 * 0.91}), rules) == 4
    assert metric_replicas(p95, ready(4, **{P95: 0.007 * 1.12}), rules) == 5  # ceil(4.48)
    assert metric_replicas(p95, ready(4, **{P95: 0.007 * 0.5}), rules) == 2


def test_starting_pods_count_as_zero_on_scale_up(tmp_path: Path) -> None:
    """Running pods without a metric count as 0 on a scale-up (the docs' missing-metrics rule)."""
    hpa = spec(tmp_path)
    # 2 ready at 2x the target, 2 starting: ratio (2*2 + 0) / 4 = 1.0 -> within tolerance.
    fleet = Fleet(4, 0, 2, {P95: 0.014})
    assert metric_replicas(hpa.metrics[0], fleet, (hpa.scale_up, hpa.scale_down)) == 4
    # 2 ready at 3x: ratio 6 / 4 = 1.5 -> ceil(1.5 * 4) = 6.
    fleet = Fleet(4, 0, 2, {P95: 0.021})
    assert metric_replicas(hpa.metrics[0], fleet, (hpa.scale_up, hpa.scale_down)) == 6


def test_the_largest_count_of_several_metrics_wins(tmp_path: Path) -> None:
    """p95 asks for 3 pods, cpu for 8: the controller takes 8."""
    controller = Controller(spec(tmp_path))
    assert controller.sync(0, ready(4, **{P95: 0.005, CPU: 1.0})) == 8


def test_scale_down_stabilisation_holds_the_highest_recommendation(tmp_path: Path) -> None:
    """After a recommendation of 6, lower ones do not scale down until 300 s have passed."""
    controller = Controller(spec(tmp_path))
    assert controller.sync(0, ready(6, **{P95: 0.007, CPU: 0.5})) == 6
    low = {P95: 0.0035, CPU: 0.25}  # asks for 3
    assert all(controller.sync(t, ready(6, **low)) == 6 for t in range(15, 300, 15))
    assert controller.sync(300, ready(6, **low)) == 3


def test_a_percent_policy_limits_scale_up_per_period(tmp_path: Path) -> None:
    """Percent 100 per 60 s: 2 -> 4, then no more until the period from the first step ends."""
    behavior = "scaleUp: {policies: [{type: Percent, value: 100, periodSeconds: 60}]}"
    controller = Controller(spec(tmp_path, behavior))
    overload = {P95: 0.07, CPU: 1.0}
    assert controller.sync(0, ready(2, **overload)) == 4
    assert controller.sync(15, ready(4, **overload)) == 4  # period started at 2 pods: limit 4
    assert controller.sync(60, ready(4, **overload)) == 8


@pytest.mark.parametrize(("select", "expected"), [("Max", 6), ("Min", 4), ("Disabled", 2)])
def test_select_policy_picks_the_biggest_or_smallest_change(
    tmp_path: Path, select: str, expected: int
) -> None:
    """From 2 pods, Pods 4 allows 6 and Percent 100 allows 4: Max takes 6, Min 4, Disabled 2."""
    behavior = f"""
    scaleUp:
      selectPolicy: {select}
      policies: [{{type: Pods, value: 4, periodSeconds: 15}},
                 {{type: Percent, value: 100, periodSeconds: 15}}]"""
    controller = Controller(spec(tmp_path, behavior))
    assert controller.sync(0, ready(2, **{P95: 0.07, CPU: 1.0})) == expected


def test_min_and_max_replicas_clamp(tmp_path: Path) -> None:
    """However far the metric asks, the count stays within minReplicas..maxReplicas."""
    behavior = """
    scaleUp: {policies: [{type: Pods, value: 100, periodSeconds: 15}]}
    scaleDown: {stabilizationWindowSeconds: 0}"""
    assert Controller(spec(tmp_path, behavior)).sync(0, ready(8, **{P95: 1.0, CPU: 1.0})) == 10
    assert Controller(spec(tmp_path, behavior)).sync(0, ready(8, **{P95: 0.0, CPU: 0.0})) == 2


def test_curve_interpolates_and_sheds_above_capacity(tmp_path: Path) -> None:
    """Between steps the figures are interpolated; past the capacity the excess fails."""
    raw, _ = load_curve(curve_json(tmp_path / "r.json"))
    curve = PodCurve.from_results(raw, overload_s=0.025)
    figures = curve.at(np.array([150.0, 2000.0]))
    expected = (3.0 / (1 - 0.09) + 3.0 / (1 - 0.18)) / 2 / 1e3
    assert figures["p95_s"][0] == pytest.approx(expected)
    assert figures["failures"][1] == pytest.approx(0.5)
    assert figures["p95_s"][1] == pytest.approx(0.03)  # the last step's 30 ms, above the lag


def test_metric_lag_delays_the_reaction(tmp_path: Path) -> None:
    """The same load step is answered one lag later when the metric lags by 60 s more."""
    raw, _ = load_curve(curve_json(tmp_path / "r.json"))
    curve = PodCurve.from_results(raw, overload_s=0.025)
    hpa = spec(tmp_path)
    load = np.where(np.arange(600) < 120, 800.0, 3000.0)

    def first_scale_up(lag: float) -> int:
        timing = Timing(1, 15, 10, 2, {"p95": (60, lag), "cpu": (15, lag)}, 1.0)
        run = simulate(load, hpa, curve, timing, P95)
        return int(np.flatnonzero(run["replicas"] > 2)[0])

    assert first_scale_up(75) - first_scale_up(15) == pytest.approx(60, abs=15)


def test_slo_threshold_and_budget_come_from_their_home(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 10 ms threshold and the 1 % budget are read from inference.slo, not copied."""
    assert run.slo() == (0.01, 0.01)
    monkeypatch.setattr(slo, "LATENCY_THRESHOLD_S", 0.025)
    assert run.slo() == (0.025, 0.01)


def test_missing_curve_is_an_error_naming_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without servers.ours.capacity_curve the run stops non-zero and says what it needs."""
    old = tmp_path / "2026-01-01-x.json"
    old.write_text(json.dumps({"servers": {"ours": {"cold_starts_s": [1.0]}}}))
    with pytest.raises(MissingCurveError, match=r"servers\.ours\.capacity_curve"):
        find_results(tmp_path)
    assert run.main(["--results", str(old), "--out", str(tmp_path / "out")]) != 0
    assert "capacity_curve" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    curve_json(tmp_path / "2026-02-01-x.json")
    assert find_results(tmp_path).name == "2026-02-01-x.json"


def test_a_curve_breaking_its_contract_is_refused_naming_the_file_and_field(tmp_path: Path) -> None:
    """A capacity curve whose step lacks a field of the harness's contract is refused, named."""
    path = curve_json(tmp_path / "r.json")
    results = json.loads(path.read_text())
    del results["servers"]["ours"]["capacity_curve"]["steps"][0]["p95_ms"]
    path.write_text(json.dumps(results))
    with pytest.raises(MissingCurveError, match=r"r\.json: .*capacity_curve breaks its contract"):
        load_curve(path)
    with pytest.raises(MissingCurveError, match="p95_ms"):
        load_curve(path)


@pytest.mark.slow
def test_run_writes_a_table_and_a_plot_per_profile(tmp_path: Path) -> None:
    """A short run writes the JSON, the Markdown table and one PNG per profile, every signal."""
    scenarios = tmp_path / "scenarios.toml"
    text = (REPO_ROOT / "studies" / "autoscaling" / "scenarios.toml").read_text()
    scenarios.write_text(text.replace("minutes = 1440", "minutes = 120"))
    out = tmp_path / "out"
    argv = ["--results", str(curve_json(tmp_path / "r.json")), "--out", str(out)]
    argv += ["--hpa", str(hpa_yaml(tmp_path / "hpa.yaml")), "--scenarios", str(scenarios)]
    assert run.main(argv) == 0
    (report_file,) = out.glob("autoscaling-*.json")
    report: dict[str, Any] = json.loads(report_file.read_text())
    assert set(report["profiles"]) == {"ramp", "spike", "daily"}
    for profile, rows in report["profiles"].items():
        assert set(rows) == {"p95", "cpu", "in-flight"}
        assert (out / report["plots"][profile]).stat().st_size > 10_000
    spike = report["profiles"]["spike"]["cpu"]
    assert "spike_absorbed_min" in spike
    assert spike["max_pods"] > 2
    assert "| in-flight |" in (out / report_file.with_suffix(".md").name).read_text()


def test_the_deployed_hpa_is_what_the_simulation_reads() -> None:
    """k8s/base/hpa.yaml parses: its p95 Pods metric and the server container's cpu metric."""
    hpa = HpaSpec.from_yaml(REPO_ROOT / "k8s" / "base" / "hpa.yaml")
    names = [metric.name for metric in hpa.metrics]
    assert names == ["carprice_request_duration_seconds_p95_per_pod", CPU]
    assert hpa.min_replicas >= 1
    assert hpa.max_replicas > hpa.min_replicas
