"""Real test rows for the benchmarks, read from `data/` at run time and never committed.

The rows are the raw `Car` fields of held-out listings from the 2020 source (the training
data's source). Where the training package has written its own split, its test rows are used;
otherwise a deterministic 20 % of the 2020 listings, chosen by a hash of the listing id.
"""

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Final

import pandas as pd

from shared_schema import FIELD_NAMES, OPTIONAL_FIELDS, Car

FEATURES_FILE: Final = Path("data/features/cars.parquet")
LABELS_FILE: Final = Path("data/features/labels.parquet")
TRAINING_SOURCE: Final = "autoru_2020_moscow"
#: The training package's test split (`car-train split`): listing ids, raw fields, price.
TEST_SPLIT: Final = Path("data/splits/test.parquet")
_TEST_SHARE_PERCENT: Final = 20


def is_held_out(listing_id: str) -> bool:
    """Whether a listing falls in the stand-in's held-out 20 %: stable across runs."""
    digest = hashlib.sha256(listing_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < _TEST_SHARE_PERCENT


def labelled_rows(root: Path = Path()) -> pd.DataFrame:
    """Every 2020 listing's raw fields with its `price` and `listing_id`."""
    cars = pd.read_parquet(root / FEATURES_FILE)
    labels = pd.read_parquet(root / LABELS_FILE, columns=["listing_id", "price"])
    frame = cars.merge(labels, on="listing_id", validate="one_to_one")
    frame = frame[frame["source"] == TRAINING_SOURCE]
    return frame[["listing_id", *FIELD_NAMES, "price"]].reset_index(drop=True)


def held_out_rows(root: Path = Path(), *, standin: bool = False) -> pd.DataFrame:
    """Held-out rows: the training split's test rows, or the stand-in's hash split.

    Args:
        root: Repository root.
        standin: Use the stand-in's split (its model was trained on the other 80 %).
    """
    split = root / TEST_SPLIT
    if not standin and split.exists():
        frame = pd.read_parquet(split)
        return frame[["listing_id", *FIELD_NAMES, "price"]].reset_index(drop=True)
    frame = labelled_rows(root)
    return frame[frame["listing_id"].map(is_held_out)].reset_index(drop=True)


def car_dicts(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready `Car` dicts (None for a missing optional field), each validated."""
    cars: list[dict[str, Any]] = []
    for record in frame[list(FIELD_NAMES)].to_dict(orient="records"):
        car: dict[str, Any] = {}
        for name in FIELD_NAMES:
            value = record[name]
            if isinstance(value, float) and math.isnan(value):
                value = None
            elif hasattr(value, "item"):  # numpy scalar → Python scalar
                value = value.item()
            if value is None and name not in OPTIONAL_FIELDS:
                raise ValueError(f"test row has no {name}")
            car[name] = value
        cars.append(car)
    # The server decodes strictly: make sure every payload is a valid request body.
    import msgspec

    msgspec.convert(cars, list[Car])
    return cars


def write_payloads(cars: list[dict[str, Any]], path: Path) -> Path:
    """Write cars for the load generator as one JSON list (outside the repository)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cars, ensure_ascii=False), encoding="utf-8")
    return path
