"""Feature tables from validated listings: pure functions over DataFrames."""

from typing import Final

import numpy as np
import pandas as pd

from shared_schema import FIELD_NAMES

#: Columns derived here from the raw fields and the listing date.
DERIVED_COLUMNS: Final[tuple[str, ...]] = ("listing_year", "age_years", "km_per_year")

#: The feature table: Feast entity key, event time, source, raw fields, derived columns.
FEATURE_COLUMNS: Final[tuple[str, ...]] = (
    "listing_id",
    "event_timestamp",
    "source",
    *FIELD_NAMES,
    *DERIVED_COLUMNS,
)

#: Columns the listings table must have for features and labels to be built.
LISTING_REQUIRED: Final[tuple[str, ...]] = (
    "listing_id",
    "event_timestamp",
    "source",
    *FIELD_NAMES,
    "price",
    "duplicate_count",
)

#: The label table: what the entity frame of a training query holds.
LABEL_COLUMNS: Final[tuple[str, ...]] = (
    "listing_id",
    "event_timestamp",
    "source",
    "price",
    "duplicate_count",
)


def build_features(listings: pd.DataFrame) -> pd.DataFrame:
    """Raw validated fields plus derived columns, one row per listing.

    `age_years` is the car's age when listed (at least 0); `km_per_year` divides mileage by
    the age, counting a car listed in its production year as one year old.
    """
    features = listings.loc[:, ["listing_id", "event_timestamp", "source", *FIELD_NAMES]].copy()
    features["listing_year"] = features["event_timestamp"].dt.year.astype(np.int64)
    age = (features["listing_year"] - features["production_year"]).clip(lower=0)
    features["age_years"] = age.astype(np.int64)
    features["km_per_year"] = features["mileage"] / np.maximum(age, 1)
    return features.loc[:, list(FEATURE_COLUMNS)].reset_index(drop=True)


def build_labels(listings: pd.DataFrame) -> pd.DataFrame:
    """The target and its bookkeeping, one row per listing."""
    return listings.loc[:, list(LABEL_COLUMNS)].reset_index(drop=True)
