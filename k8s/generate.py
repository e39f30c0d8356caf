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
`--check` writes nothing and exits 1 naming every file that differs, with the difference
(tests/k8s does the same).
"""

import argparse
import difflib
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Final

import yaml

from k8s import slo_values

ROOT: Final = Path(__file__).resolve().parents[1]
COMMAND: Final = "make generate"
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


def stale(root: Path = ROOT) -> list[str]:
    """Every committed file that differs from what the generator writes, with the difference."""
    problems = []
    for target, write in GENERATED.items():
        path = root / target
        wanted = write(root)
        committed = path.read_text(encoding="utf-8") if path.exists() else ""
        if committed != wanted:
            diff = difflib.unified_diff(
                committed.splitlines(keepends=True),
                wanted.splitlines(keepends=True),
                f"{target} (committed)",
                f"{target} (generated)",
                n=1,
            )
            problems.append(f"{target} differs from `{COMMAND}`:\n{''.join(diff)}")
    return problems


def generate(root: Path = ROOT) -> list[Path]:
    """Write every generated file; the ones whose text changed."""
    written = []
    for target, write in GENERATED.items():
        path = root / target
        text = write(root)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    """Write the generated files, or with --check name those that differ."""
    parser = argparse.ArgumentParser(prog="python -m k8s.generate", description=__doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = stale()
            for problem in problems:
                print(problem, file=sys.stderr)
            return 1 if problems else 0
        for target in generate():
            print(f"wrote {target}")
    except slo_values.StampError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (PromQL, descriptions) as readable `|` blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


if __name__ == "__main__":
    sys.exit(main())
