"""Feature tables from validated listings: pure functions over DataFrames.

The model's features are the 16 raw `Car` fields and nothing derived: a request has no listing
date, so nothing computed from it could be reproduced by the serving graph.
"""

from typing import Final

import pandas as pd

from shared_schema import FIELD_NAMES

#: The feature table: Feast entity key, event time, source, and the raw fields.
FEATURE_COLUMNS: Final[tuple[str, ...]] = (
    "listing_id",
    "event_timestamp",
    "source",
    *FIELD_NAMES,
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
    """The raw validated fields, one row per listing."""
    return listings.loc[:, list(FEATURE_COLUMNS)].reset_index(drop=True)


def build_labels(listings: pd.DataFrame) -> pd.DataFrame:
    """The target and its bookkeeping, one row per listing."""
    return listings.loc[:, list(LABEL_COLUMNS)].reset_index(drop=True)


def compare_with_table(frame: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """Compare a training frame fetched through the feature store with its feature table.

    Returns:
        Human-readable differences; empty when every row and feature column matches.
    """
    columns = [c for c in table.columns if c != "event_timestamp"]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        return [f"missing column(s) {', '.join(missing)}"]
    if len(frame) != len(table):
        return [f"{len(frame)} rows fetched, {len(table)} in the table"]
    left = frame.loc[:, columns].set_index("listing_id").sort_index()
    right = table.loc[:, columns].set_index("listing_id").sort_index()
    problems = []
    for column in left.columns:
        a, b = left[column], right[column]
        if pd.api.types.is_numeric_dtype(b):
            same = (a.astype(float) == b.astype(float)) | (a.isna() & b.isna())
        else:
            same = a.astype(str) == b.astype(str)
        if not same.all():
            problems.append(f"{column}: {int((~same).sum())} row(s) differ")
    return problems
