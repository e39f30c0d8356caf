"""Params for tests: the repository's params.yaml with every output moved under a folder.

Tests run with the real settings and override only what they need, so a new key in
params.yaml never needs a second copy here.
"""

import copy
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


def repo_params() -> dict[str, Any]:
    """A fresh copy of the repository's params.yaml as plain data."""
    raw: dict[str, Any] = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    return raw


def relocated(root: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """params.yaml with every `paths` entry and the MLflow store under `root`, then `sections`.

    Args:
        root: The folder that takes the place of the repository root for outputs.
        **sections: Keys to override per section (see `merged`).
    """
    raw = repo_params()
    raw["paths"] = {key: str(root / value) for key, value in raw["paths"].items()}
    registry = raw["registry"]
    store = Path(registry["tracking_uri"].removeprefix("sqlite:///"))
    registry["tracking_uri"] = f"sqlite:///{root / store}"
    registry["artifact_dir"] = str(root / registry["artifact_dir"])
    return merged(raw, **sections)


def merged(raw: dict[str, Any], **sections: dict[str, Any]) -> dict[str, Any]:
    """`raw` with keys overridden per section, one level deep.

    A mapping value (e.g. `train={"lightgbm": {...}}`) is merged into the section's mapping
    rather than replacing it.
    """
    for section, values in sections.items():
        target = raw.setdefault(section, {})
        for key, value in copy.deepcopy(values).items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                target[key].update(value)
            else:
                target[key] = value
    return raw


def write_params(raw: dict[str, Any], path: Path) -> Path:
    """Write params as YAML; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path
