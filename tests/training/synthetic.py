"""Synthetic cars and a small pipeline trained on them, for the training tests.

Every row is generated here from a made-up price formula (log price rises with production year
and power, falls with mileage, depends on brand), so the tests never read the real data.
"""

from typing import Any

import numpy as np
import pandas as pd

from training.core.encoding import fit_vocabulary
from training.core.model import PricePipeline, train_booster

from ..conftest import SMALL_FOREST

_MODELS = {
    "BMW": ("3ER", "5ER", "X5"),
    "TOYOTA": ("CAMRY", "COROLLA", "RAV_4"),
    "LADA": ("GRANTA", "VESTA"),
    "AUDI": ("A4", "A6", "Q7"),
}
_BRAND_LOG_PRICE = {"BMW": 14.3, "TOYOTA": 13.9, "LADA": 13.0, "AUDI": 14.2}

#: The booster `train_small` fits: the tests' small forest, for in-process pipelines.
SMALL_LGBM: dict[str, Any] = {
    **SMALL_FOREST,
    "objective": "huber",
    "alpha": 1.0,
    "num_threads": 1,
    "max_cat_to_onehot": 2,
    "cat_smooth": 1.0,
    "seed": 0,
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
