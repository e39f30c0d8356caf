"""Synthetic cars, a small trained pipeline and params in a temporary tree, for the model tests.

Every row is generated here from a made-up price formula (log price rises with production year
and power, falls with mileage, depends on brand), so the tests never read the real data.
"""

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from training.config import Params, load_params
from training.core.encoding import fit_vocabulary
from training.core.model import PricePipeline, train_booster

from ..conftest import merged, relocated, write_params

_MODELS = {
    "BMW": ("3ER", "5ER", "X5"),
    "TOYOTA": ("CAMRY", "COROLLA", "RAV_4"),
    "LADA": ("GRANTA", "VESTA"),
    "AUDI": ("A4", "A6", "Q7"),
}
_BRAND_LOG_PRICE = {"BMW": 14.3, "TOYOTA": 13.9, "LADA": 13.0, "AUDI": 14.2}

#: Small, fast booster settings for tests.
SMALL_LGBM: dict[str, Any] = {
    "objective": "huber",
    "alpha": 1.0,
    "learning_rate": 0.1,
    "num_leaves": 15,
    "min_child_samples": 5,
    "num_threads": 1,
    "max_cat_to_onehot": 2,
    "cat_smooth": 1.0,
    "seed": 0,
}


#: Small, fast settings of the training steps (the rest is the repository's params.yaml).
FAST_SECTIONS: dict[str, dict[str, Any]] = {
    "train": {
        "lightgbm": {k: v for k, v in SMALL_LGBM.items() if k != "max_cat_to_onehot"},
        "num_boost_round": 40,
        "early_stopping_rounds": 40,
        "use_tuned_params": False,
    },
    "tune": {"n_trials": 2, "num_boost_round": 20, "early_stopping_rounds": 10},
}


def synthetic_cars(n: int, seed: int = 0) -> pd.DataFrame:
    """`n` made-up listings with every schema field, `listing_id` and `price`."""
    rng = np.random.default_rng(seed)
    brand = rng.choice(list(_MODELS), n)
    model = np.array([rng.choice(_MODELS[b]) for b in brand])
    year = rng.integers(1995, 2021, n)
    mileage = np.clip((2021 - year) * rng.normal(15_000, 5_000, n), 0, None).round()
    power = rng.choice([90.0, 120.0, 150.0, 190.0, 250.0, 340.0], n)
    displacement = np.where(rng.random(n) < 0.2, np.nan, np.round(power / 80, 1))
    log_price = (
        np.array([_BRAND_LOG_PRICE[b] for b in brand])
        + 0.09 * (year - 2010)
        - 2e-6 * mileage
        + 0.002 * power
        + rng.normal(0, 0.1, n)
    )
    return pd.DataFrame(
        {
            "listing_id": [f"synthetic:{seed}:{i}" for i in range(n)],
            "brand": brand,
            "model_name": model,
            "body_type": rng.choice(["седан", "внедорожник", "хэтчбек"], n),
            "color": rng.choice(["чёрный", "белый", "серый", "красный"], n),
            "fuel_type": rng.choice(["бензин", "дизель"], n),
            "model_year": year - rng.integers(0, 5, n),
            "production_year": year,
            "n_doors": rng.choice([3, 4, 5], n),
            "vehicle_transmission": rng.choice(["автомат", "механика"], n),
            "engine_power": power,
            "engine_displacement": displacement,
            "mileage": mileage.astype(np.int64),
            "drive_type": rng.choice(["передний", "полный", "задний"], n),
            "n_owners": rng.choice(["1", "2", "3+", "unknown"], n),
            "is_original_techpass": rng.integers(0, 2, n),
            "is_lefthand_drive": np.ones(n, dtype=np.int64),
            "price": np.exp(log_price).round(-3),
        }
    )


def train_small(
    train: pd.DataFrame, val: pd.DataFrame, rounds: int = 60, **overrides: Any
) -> PricePipeline:
    """A small pipeline trained on synthetic rows."""
    vocabulary = fit_vocabulary(train, 1)
    pipeline, _ = train_booster(
        train,
        val,
        vocabulary,
        {**SMALL_LGBM, **overrides},
        num_boost_round=rounds,
        early_stopping_rounds=rounds,
    )
    return pipeline


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
def make_params(tmp_path: Path) -> Any:
    """Write params.yaml into tmp_path with every output under it; return a loader.

    The repository's params with small, fast training settings; call with `**sections` to
    override keys, e.g. `make_params(train={"num_boost_round": 5})`.
    """

    def _make(**sections: dict[str, Any]) -> Params:
        raw = merged(relocated(tmp_path, **FAST_SECTIONS), **sections)
        return load_params(write_params(raw, tmp_path / "params.yaml"))

    return _make


@pytest.fixture
def write_splits(cars: dict[str, pd.DataFrame]) -> Any:
    """Write the synthetic splits where `params.paths.splits` says, as `split` would."""
    from training.io import splits

    def _write(params: Params) -> None:
        splits.write(params.paths.splits, cars, "synthetic")

    return _write


@pytest.fixture(autouse=True)
def _no_tracking_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's MLFLOW_TRACKING_URI away from the temporary stores."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def make_cars() -> Any:
    """`synthetic_cars` itself, for tests that need more or different rows."""
    return synthetic_cars


@pytest.fixture(scope="session")
def trainer() -> Any:
    """`train_small` itself, for tests that train models of different quality."""
    return train_small
