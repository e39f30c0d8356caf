"""No query reads an app label the Prometheus Operator overwrites with a target label.

The Operator gives every PodMonitor target the labels below (pkg/prometheus/promcfg.go,
`generatePodMonitorConfig`) and, with `honorLabels` false (its default), renames a scraped label
of the same name to `exported_<name>`. A rule selecting such an app label finds nothing in
production and nothing in a test that scrapes without the Operator's relabelling.
"""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from inference.metrics import Metrics

from ..k8s.manifests import adapter_rules, by_kind, rendered

ROOT: Final = Path(__file__).resolve().parents[2]
MONITORING: Final = ROOT / "monitoring"
DASHBOARD: Final = MONITORING / "grafana" / "dashboards" / "car-price.json"
#: Target labels of a PodMonitor target: `instance` (Prometheus' own), `job`, `namespace`,
#: `pod`, `container`, `endpoint` (the port's name); `service` too for a ServiceMonitor.
OPERATOR_LABELS: Final = frozenset(
    {"instance", "job", "namespace", "pod", "container", "endpoint", "service"}
)
#: The target labels our queries may read, as the target's identity: which scrape job, which
#: pod (the HPA's custom metric is keyed by namespace and pod). The rest hold the Operator's
#: values (a port or container name), so a query reading them was written for an app label.
TARGET_IDENTITY: Final = frozenset({"instance", "job", "namespace", "pod"})

_SELECTOR: Final = re.compile(r"\{([^{}]*)\}")
_MATCHER: Final = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING: Final = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_TEMPLATE: Final = re.compile(r"\{\{\s*\$?(?:labels\.)?([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


def labels_read(expr: str) -> set[str]:
    """The label names a PromQL expression selects on or groups by."""
    found = {name for selector in _SELECTOR.findall(expr) for name in _MATCHER.findall(selector)}
    found |= {
        name.strip()
        for grouping in _GROUPING.findall(expr)
        for name in grouping.split(",")
        if name.strip()
    }
    return found


def _rule_queries() -> Iterator[tuple[str, str, str]]:
    for path in sorted((MONITORING / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                kind = "recording rule" if "record" in rule else "alert"
                where = f"{path.name}: {kind} {rule.get('record') or rule['alert']}"
                yield where, "expr", rule["expr"]
                for key, text in rule.get("annotations", {}).items():
                    for name in _TEMPLATE.findall(text):
                        yield where, f"annotation {key}", f"{{{name}=''}}"


def _dashboard_queries() -> Iterator[tuple[str, str, str]]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            where = f"{DASHBOARD.name}: panel {panel['title']!r}"
            yield where, "expr", target["expr"]
            for name in _TEMPLATE.findall(target.get("legendFormat", "")):
                yield where, "legend", f"{{{name}=''}}"
    for annotation in dashboard["annotations"]["list"]:
        yield f"{DASHBOARD.name}: annotation {annotation['name']!r}", "expr", annotation["expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            yield f"{DASHBOARD.name}: variable {variable['name']!r}", "query", text


def _scaling_queries() -> Iterator[tuple[str, str, str]]:
    for rule in adapter_rules():
        where = f"prometheus-adapter rule {rule['name']['as']}"
        yield where, "seriesQuery", rule["seriesQuery"]
        yield where, "metricsQuery", rule["metricsQuery"]
        for name in rule["resources"].get("overrides", {}):
            yield where, "resources", f"{{{name}=''}}"
    for scaled in by_kind(rendered("keda"), "ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            if trigger["type"] == "prometheus":
                yield (
                    f"KEDA ScaledObject {scaled['metadata']['name']}",
                    "query",
                    trigger["metadata"]["query"],
                )


def every_query() -> list[tuple[str, str, str]]:
    """(where, which part, PromQL) of every rule, alert, panel, adapter rule and KEDA trigger."""
    return [*_rule_queries(), *_dashboard_queries(), *_scaling_queries()]


def operator_label_problems(queries: list[tuple[str, str, str]]) -> list[str]:
    """Each query part reading a label the Operator sets that is not the target's identity."""
    problems = []
    for where, part, expr in queries:
        for name in sorted(labels_read(expr)):
            if name in OPERATOR_LABELS - TARGET_IDENTITY or name.startswith("exported_"):
                problems.append(f"{where} ({part}) reads `{name}`, a label the Operator owns")
    return problems


def test_server_labels_are_not_operator_target_labels() -> None:
    """No label of the server's metrics is one the Operator would rename to exported_<name>."""
    # A labelled metric has no samples until first used, so read the names it was declared
    # with (prometheus_client keeps them in `_labelnames` and offers no public accessor).
    exported = {
        name
        for metric in vars(Metrics()).values()
        if isinstance(metric, MetricWrapperBase)
        for name in metric._labelnames
    }
    assert "route" in exported
    assert exported & OPERATOR_LABELS == set()


@pytest.mark.needs("kubectl")
def test_no_query_reads_a_label_the_operator_owns() -> None:
    """Rules, alerts, dashboard, adapter and KEDA read no app label the Operator overwrites."""
    queries = every_query()
    assert len({where for where, _, _ in queries}) >= 30  # every source was read
    assert operator_label_problems(queries) == []


def test_the_check_names_the_offending_rule() -> None:
    """A query grouping by `endpoint` is reported with its name (the check can fail)."""
    offending = [("recording.yml: recording rule x", "expr", "sum by (job, endpoint) (up)")]
    assert operator_label_problems(offending) == [
        "recording.yml: recording rule x (expr) reads `endpoint`, a label the Operator owns"
    ]
    assert labels_read('rate(m{route="/predict", le="0.01"}[5m]) / on(pod) n') == {
        "route",
        "le",
        "pod",
    }
