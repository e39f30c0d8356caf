"""Fixtures of the training tests (core, io, jobs), and params for tests.

Params: the repository's params.yaml with every output moved under a folder. Tests run with the
real settings and override only what they need, so a new key in params.yaml never needs a
second copy here.
"""

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from training.config import Params, load_params
from training.core.model import PricePipeline

from .drift_windows import (
    FAST_DRIFT,
    REFERENCE_ROWS,
    bundle_prices,
    known_error_prices,
)
from .drift_windows import synthetic_cars as drift_cars
from .synthetic import synthetic_cars, train_small

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


@pytest.fixture(scope="session")
def cars() -> dict[str, pd.DataFrame]:
    """Synthetic train / val / test frames of 2000 / 400 / 400 rows."""
    return {
        "train": synthetic_cars(2000, seed=1),
        "val": synthetic_cars(400, seed=2),
        "test": synthetic_cars(400, seed=3),
    }


@pytest.fixture(scope="session")
def pipeline(cars: dict[str, pd.DataFrame]) -> PricePipeline:
    """A pipeline trained once per session on the synthetic train split."""
    return train_small(cars["train"], cars["val"])


@pytest.fixture
def unseen_cars(cars: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Test rows with unseen brands, models and colours, and missing displacement."""
    frame = cars["test"].head(60).copy()
    frame.loc[frame.index[:10], "brand"] = "ZAZ"
    frame.loc[frame.index[5:25], "model_name"] = "NEVER_SEEN"
    frame.loc[frame.index[20:30], "color"] = "фиолетовый"
    frame.loc[frame.index[25:60:2], "engine_displacement"] = np.nan
    return frame


@pytest.fixture
def make_params(tmp_path: Path, fast_training: dict[str, dict[str, Any]]) -> Any:
    """Write params.yaml into tmp_path with every output under it; return a loader.

    The repository's params with small, fast training settings; call with `**sections` to
    override keys, e.g. `make_params(train={"num_boost_round": 5})`.
    """

    def _make(**sections: dict[str, Any]) -> Params:
        raw = merged(relocated(tmp_path, **fast_training), **sections)
        return load_params(write_params(raw, tmp_path / "params.yaml"))

    return _make


@pytest.fixture
def write_splits(cars: dict[str, pd.DataFrame]) -> Any:
    """Write the synthetic splits where `params.paths.splits` says, as `split` would."""
    from training.io import splits

    def _write(params: Params) -> None:
        splits.write(params.paths.splits, cars, "synthetic")
        write_labels(params.paths.labels, cars)

    return _write


def write_labels(path: Path, cars: dict[str, pd.DataFrame]) -> None:
    """The label table `features` writes, for synthetic splits: one market day, 2020-09-09.

    `train` reads when each listing was asked from it (the market index's periods).
    """
    frame = pd.concat(list(cars.values()), ignore_index=True)
    labels = pd.DataFrame(
        {
            "listing_id": frame["listing_id"],
            "event_timestamp": pd.Timestamp("2020-09-09", tz="UTC"),
            "price": frame["price"],
            "source": "synthetic",
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    labels.to_parquet(path)


@pytest.fixture(scope="session")
def make_cars() -> Any:
    """`synthetic_cars` itself, for tests that need more or different rows."""
    return synthetic_cars


@pytest.fixture(scope="session")
def trainer() -> Any:
    """`train_small` itself, for tests that train models of different quality."""
    return train_small


@pytest.fixture(scope="module")
def drift_root(
    tmp_path_factory: pytest.TempPathFactory, bundle_writer: Callable[..., Path]
) -> Path:
    """A tree with the served test bundle and a reference test split (module docstring)."""
    from training.io import files, splits

    root = tmp_path_factory.mktemp("drift")
    params = load_params(write_params(relocated(root, drift=FAST_DRIFT), root / "params.yaml"))
    bundle = bundle_writer(params.paths.serving_bundle)
    test = drift_cars(REFERENCE_ROWS, seed=1)
    test.insert(0, "listing_id", [f"ref-{i}" for i in range(len(test))])
    test["price"] = known_error_prices(bundle_prices(bundle, test))
    files.write_parquet(test, splits.split_file(params.paths.splits, "test"))
    return root


@pytest.fixture(scope="module")
def drift_params(drift_root: Path) -> Params:
    """The params of `drift_root` (fast drift settings)."""
    return load_params(drift_root / "params.yaml")
