"""Synthetic cars, a test bundle, a reference split and params for `car-train drift`.

Every row is generated here (the real data never enters the tests). The reference is a test
split priced by the test bundle (tests/conftest.py `write_bundle`) with known errors: the
listed price is the bundle's price / 1.1 or / 0.7 in turn, so each row's APE is 0.1 or 0.3
and the reference MAPE is 0.2 exactly.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shared_schema import FIELD_NAMES, SCHEMA_VERSION, Car
from shared_schema.bundle import read_verified
from shared_schema.prediction_log import LOG_FORMAT, PredictionRecord
from training.io import onnx_scoring

from ..conftest import TEST_VOCABULARY

#: Small chunks so that a few hundred rows give several of them (NannyML is slowish).
FAST_DRIFT: dict[str, Any] = {"chunk_size": 100, "min_labelled_rows": 50}
REFERENCE_ROWS = 1000
#: Price divisors that make each row's APE 0.1 or 0.3 (module docstring).
PRICE_DIVISORS = (1.1, 0.7)
START = datetime(2026, 11, 1, tzinfo=UTC)


def synthetic_cars(n: int, seed: int, *, shifted: bool = False) -> pd.DataFrame:
    """N valid cars from one fixed distribution, or a clearly shifted one.

    Shifted: older, with three times the mileage, more power, and a different brand mix.
    """
    rng = np.random.default_rng(seed)
    brands = TEST_VOCABULARY["brand"]
    brand_p = [0.1, 0.1, 0.1, 0.7] if shifted else [0.4, 0.3, 0.2, 0.1]
    year = rng.integers(2000, 2012 if shifted else 2021, n)
    frame = pd.DataFrame(
        {
            "brand": rng.choice(brands, n, p=brand_p),
            "model_name": rng.choice(TEST_VOCABULARY["model_name"], n),
            "body_type": rng.choice(TEST_VOCABULARY["body_type"], n),
            "color": rng.choice(TEST_VOCABULARY["color"], n),
            "fuel_type": rng.choice(TEST_VOCABULARY["fuel_type"], n),
            "model_year": year - rng.integers(0, 3, n),
            "production_year": year,
            "n_doors": rng.choice([4, 5], n),
            "vehicle_transmission": rng.choice(TEST_VOCABULARY["vehicle_transmission"], n),
            "engine_power": rng.normal(260.0 if shifted else 150.0, 30.0, n).round().clip(60, 600),
            "engine_displacement": rng.normal(2.0, 0.4, n).round(1).clip(0.8, 6.0),
            "mileage": (rng.gamma(2.0, 30_000.0, n) * (3 if shifted else 1)).astype(int),
            "drive_type": rng.choice(TEST_VOCABULARY["drive_type"], n),
            "n_owners": rng.choice(TEST_VOCABULARY["n_owners"], n),
            "is_original_techpass": rng.choice([0, 1], n, p=[0.2, 0.8]),
            "is_lefthand_drive": rng.choice([0, 1], n, p=[0.05, 0.95]),
        }
    )
    return frame[list(FIELD_NAMES)]


def bundle_prices(bundle: Path, cars: pd.DataFrame) -> np.ndarray:
    """The test bundle's prices of `cars` (float64)."""
    served = read_verified(bundle)
    price = onnx_scoring.run_graph(
        served.model_bytes, onnx_scoring.frame_feeds(cars, served.manifest.inputs)
    )
    return price.astype(np.float64)


def known_error_prices(predicted: np.ndarray) -> np.ndarray:
    """Listed prices making the APE of row i 0.1 (even i) or 0.3 (odd i)."""
    divisors = np.resize(np.asarray(PRICE_DIVISORS), len(predicted))
    return predicted / divisors


def records(
    cars: pd.DataFrame, predicted: np.ndarray, *, first: int = 0, **overrides: Any
) -> list[PredictionRecord]:
    """Prediction-log records of `cars`, one a minute from `START + first` minutes.

    Request ids are `req-<n>` (n from `first`); `overrides` replace record fields.
    """
    out = []
    for offset, (row, price) in enumerate(zip(cars.to_dict("records"), predicted, strict=True)):
        n = first + offset
        fields: dict[str, Any] = {
            "log_format": LOG_FORMAT,
            "ts": START + timedelta(minutes=n),
            "request_id": f"req-{n}",
            "row": 0,
            "model_version": "1",
            "schema_version": SCHEMA_VERSION,
            "price_rub": float(price),
            "car": Car(**row),
        }
        out.append(PredictionRecord(**(fields | overrides)))
    return out
