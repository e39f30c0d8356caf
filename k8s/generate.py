"""Write every generated file from its one home: `make generate`.

The latency SLO and the HPA's p95 target live in `inference/src/inference/slo.py`; the files
that state them (the rules, the HPA, KEDA, the dashboard, the READMEs) are written by hand
except those values, which `k8s/slo_values.py` writes in place.

Kustomize's default load restrictor (the one `kubectl apply -k`, Argo CD and Flux run) lets a
kustomization read only files in or below its own folder. Two facts live elsewhere, and are
copied into k8s/:

- the per-pod proxy's config, `inference/haproxy/haproxy.cfg` (docker-compose and the tests
  run the same file), copied to `k8s/base/haproxy.cfg` for the base's `configMapGenerator`
  (kustomize names the ConfigMap by a hash of it, so a config change rolls the pods);
- the alerting and recording rules, `monitoring/rules/*.yml` (promtool-tested there), wrapped
  in order into the PrometheusRule `car-price` of `k8s/components/prometheus-operator/`, with
  the PodMonitor's labels (the Operator's `ruleSelector` matches the same label).

Each copy starts with a header naming its source and this command; nobody edits it by hand.
`scripts.generated` checks and writes them, with dvc.yaml's code deps (`make generate`).
"""

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Final

import yaml
from scripts.generated import COMMAND

from k8s import slo_values

HAPROXY_SOURCE: Final = Path("inference/haproxy/haproxy.cfg")
HAPROXY_COPY: Final = Path("k8s/base/haproxy.cfg")
#: The rule files Prometheus loads (monitoring/prometheus*.yml `rule_files`).
RULES_SOURCE: Final = Path("monitoring/rules")
OPERATOR: Final = Path("k8s/components/prometheus-operator")
RULE_COPY: Final = OPERATOR / "prometheusrule.yaml"
RULE_NAME: Final = "car-price"


def header(source: str) -> str:
    """The comment every generated copy starts with (`#` comments in YAML and HAProxy alike)."""
    return f"# GENERATED, DO NOT EDIT.\n# source: {source}\n# regenerate with: {COMMAND}\n"


def haproxy_copy(root: Path) -> str:
    """The proxy's config as the base's ConfigMap reads it: the header, then the file as is."""
    source = (root / HAPROXY_SOURCE).read_text(encoding="utf-8")
    return header(HAPROXY_SOURCE.as_posix()) + "\n" + source


def prometheus_rule(root: Path) -> str:
    """Every rule group of `monitoring/rules/*.yml`, in file order, as one PrometheusRule.

    No namespace: the overlay's `namespace` sets it, as for the PodMonitor beside it.
    """
    paths = sorted((root / RULES_SOURCE).glob("*.yml"))
    groups = [
        group
        for path in paths
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    ]
    monitor = yaml.safe_load((root / OPERATOR / "podmonitor.yaml").read_text(encoding="utf-8"))
    rule: dict[str, Any] = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": RULE_NAME, "labels": dict(monitor["metadata"].get("labels", {}))},
        "spec": {"groups": groups},
    }
    sources = ", ".join(p.relative_to(root).as_posix() for p in paths)
    body = yaml.dump(rule, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100)
    return header(sources) + body


#: Each copy of a file from outside k8s/ (relative to the checkout) and what writes it.
COPIES: Final[dict[Path, Callable[[Path], str]]] = {
    HAPROXY_COPY: haproxy_copy,
    RULE_COPY: prometheus_rule,
}
#: Every generated file and what writes it. The SLO's values come first: the rules they are
#: written into are then copied into the PrometheusRule.
GENERATED: Final[dict[Path, Callable[[Path], str]]] = {
    **{path: partial(slo_values.stamped, path) for path in slo_values.STAMPS},
    **COPIES,
}


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (PromQL, descriptions) as readable `|` blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)
