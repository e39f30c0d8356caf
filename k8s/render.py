"""Render a kustomization of k8s/ with plain `kubectl kustomize`, kustomize's defaults.

`make -s manifests OVERLAY=prod` runs `python -m k8s.render k8s/overlays/prod`, which prints
what `kubectl kustomize k8s/overlays/prod` prints: the same as `kubectl apply -k` applies and
Argo CD or Flux deploy. No load restrictor is lifted and nothing is added after kustomize: the
proxy's config and the PrometheusRule are generated copies inside k8s/ (k8s/generate.py,
`make generate`).
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]


class RenderError(RuntimeError):
    """kustomize refused the kustomization (its message names the problem)."""


def kustomize_text(path: Path) -> str:
    """What `kubectl kustomize PATH` prints, with kustomize's default load restrictor.

    Raises:
        RenderError: kubectl is missing or kustomize failed; the message is kustomize's.
    """
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise RenderError("kubectl not found (the `test` dependency group installs it)")
    command = [kubectl, "kustomize", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RenderError(f"kubectl kustomize {path}: {done.stderr.strip()}")
    return done.stdout


def kustomize(path: Path) -> list[Manifest]:
    """The objects `kubectl kustomize` renders from the kustomization in `path`."""
    return [doc for doc in yaml.safe_load_all(kustomize_text(path)) if doc]


def main(argv: list[str] | None = None) -> int:
    """Print the rendered objects as kustomize prints them."""
    parser = argparse.ArgumentParser(prog="python -m k8s.render", description=__doc__)
    parser.add_argument("kustomization", type=Path, help="e.g. k8s/overlays/prod")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(kustomize_text(args.kustomization))
    except RenderError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
