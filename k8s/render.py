"""Render a kustomization of k8s/, plus the PrometheusRule built from monitoring/rules/.

`make -s manifests OVERLAY=prod | kubectl apply -f -` runs `python -m k8s.render
k8s/overlays/prod`. The rules live once, in monitoring/rules/ (promtool-tested there);
kustomize cannot turn files outside k8s/ into a custom resource without a committed copy, so
this step wraps their groups into a PrometheusRule for every overlay that uses the Prometheus
Operator (renders a PodMonitor), in the PodMonitor's namespace and with its labels.

The proxy's ConfigMap is kustomize's own (`configMapGenerator` in base/, from
inference/haproxy/haproxy.cfg): kustomize names it by a hash of the content, so a change to the
config rolls the pods. Reading a file outside k8s/ needs `--load-restrictor
LoadRestrictionsNone`, which this step passes; a plain `kubectl apply -k` refuses the base.
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import yaml

ROOT: Final = Path(__file__).resolve().parents[1]
#: The rule files Prometheus loads (monitoring/prometheus*.yml `rule_files`).
RULES_DIR: Final = ROOT / "monitoring" / "rules"
RULE_NAME: Final = "car-price"

Manifest = dict[str, Any]


class RenderError(RuntimeError):
    """kustomize refused the kustomization (its message names the problem)."""


def kustomize(path: Path) -> list[Manifest]:
    """The objects `kubectl kustomize` renders from the kustomization in `path`.

    Raises:
        RenderError: kubectl is missing or kustomize failed; the message is kustomize's.
    """
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise RenderError("kubectl not found (the `test` dependency group installs it)")
    # The base reads the proxy's config from inference/haproxy/, outside k8s/ (module docstring).
    command = [kubectl, "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RenderError(f"kubectl kustomize {path}: {done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def prometheus_rule(namespace: str, labels: dict[str, str], rules_dir: Path) -> Manifest:
    """Every rule group of `rules_dir/*.yml`, in file order, as one PrometheusRule."""
    groups = [
        group
        for path in sorted(rules_dir.glob("*.yml"))
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    ]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": RULE_NAME, "namespace": namespace, "labels": dict(labels)},
        "spec": {"groups": groups},
    }


def render(path: Path, rules_dir: Path = RULES_DIR) -> list[Manifest]:
    """The kustomization's objects, plus the rules wherever a PodMonitor is rendered."""
    objects = kustomize(path)
    for monitor in [obj for obj in objects if obj["kind"] == "PodMonitor"]:
        metadata = monitor["metadata"]
        objects.append(
            prometheus_rule(
                metadata.get("namespace", "default"), metadata.get("labels", {}), rules_dir
            )
        )
    return objects


def main(argv: list[str] | None = None) -> int:
    """Print the rendered objects as one YAML stream."""
    parser = argparse.ArgumentParser(prog="python -m k8s.render", description=__doc__)
    parser.add_argument("kustomization", type=Path, help="e.g. k8s/overlays/prod")
    args = parser.parse_args(argv)
    try:
        objects = render(args.kustomization)
    except RenderError as error:
        print(error, file=sys.stderr)
        return 1
    sys.stdout.write(yaml.dump_all(objects, Dumper=_BlockDumper, sort_keys=False))
    return 0


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (PromQL, the adapter's config) as readable `|` blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


if __name__ == "__main__":
    sys.exit(main())
