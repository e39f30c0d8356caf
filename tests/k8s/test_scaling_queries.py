"""The autoscaler's PromQL (prometheus-adapter's metricsQuery, KEDA's query) on real Prometheus.

promtool (Debian's `prometheus` package, `make system-deps`) evaluates each query over a busy
pod and an idle one, whose per-pod p95 is NaN (no /predict in the window): the idle pod must
read as 0, not vanish, or the HPA would never scale an idle service down.
"""

import subprocess
from pathlib import Path

import pytest
import yaml

from inference.metrics import LATENCY_BUCKETS

from ..programs import program
from .manifests import adapter_rules, by_kind, quantity, rendered

BUSY_P95 = 0.004


def _promtool_test(tmp_path: Path, expr: str, expected: list[dict[str, object]]) -> None:
    promtool = program("promtool")
    series = "carprice:request_duration_seconds:p95_per_pod"
    test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": f'{series}{{namespace="car-price",pod="busy"}}',
                        "values": f"{BUSY_P95} {BUSY_P95}",
                    },
                    {
                        "series": f'{series}{{namespace="car-price",pod="idle"}}',
                        "values": "NaN NaN",
                    },
                ],
                "promql_expr_test": [{"expr": expr, "eval_time": "1m", "exp_samples": expected}],
            }
        ],
    }
    path = tmp_path / "query_test.yml"
    path.write_text(yaml.safe_dump(test), encoding="utf-8")
    done = subprocess.run(
        [promtool, "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.needs("promtool")
def test_adapter_metric_reads_an_idle_pod_as_zero(tmp_path: Path) -> None:
    """The adapter's metricsQuery, as it expands it for the HPA, gives each pod its p95 or 0."""
    (rule,) = adapter_rules()
    expr = (
        rule["metricsQuery"]
        .replace("<<.Series>>", rule["seriesQuery"].split("{")[0].strip("'"))
        .replace("<<.LabelMatchers>>", 'namespace="car-price"')
        .replace("<<.GroupBy>>", "pod")
    )
    expected = [
        {"labels": '{pod="busy"}', "value": BUSY_P95},
        {"labels": '{pod="idle"}', "value": 0},
    ]
    _promtool_test(tmp_path, expr, expected)


@pytest.mark.needs("kubectl", "promtool")
def test_keda_query_averages_idle_pods_as_zero(tmp_path: Path) -> None:
    """KEDA's query is the mean per-pod p95, an idle pod counting 0."""
    (scaled,) = by_kind(rendered("keda"), "ScaledObject")
    (trigger,) = [t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus"]
    _promtool_test(
        tmp_path, trigger["metadata"]["query"], [{"labels": "{}", "value": BUSY_P95 / 2}]
    )


@pytest.mark.needs("kubectl")
def test_autoscaler_targets_are_latency_bucket_edges() -> None:
    """The HPA's p95 target and KEDA's threshold are edges of the server's latency histogram.

    Between edges histogram_quantile interpolates linearly: a target inside a bucket compares
    the HPA with a p95 that is a guess exactly where it decides.
    """
    (hpa,) = by_kind(rendered("prod"), "HorizontalPodAutoscaler")
    (pods,) = [m for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    (scaled,) = by_kind(rendered("keda"), "ScaledObject")
    (trigger,) = [t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus"]
    targets = {
        quantity(pods["pods"]["target"]["averageValue"]),
        float(trigger["metadata"]["threshold"]),
    }
    assert len(targets) == 1  # the HPA and KEDA agree
    assert targets <= set(LATENCY_BUCKETS), f"{targets} not in {LATENCY_BUCKETS}"
