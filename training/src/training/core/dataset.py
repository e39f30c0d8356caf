"""Checks and fingerprints of training frames: pure functions over DataFrames."""

import hashlib

import numpy as np
import pandas as pd

from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES, NUMERIC_FIELDS, OPTIONAL_FIELDS

#: Columns every split frame has: the entity key, the raw fields and the target.
FRAME_COLUMNS: tuple[str, ...] = ("listing_id", *FIELD_NAMES, "price")


def frame_problems(frame: pd.DataFrame) -> list[str]:
    """What makes a frame unusable for training or evaluation; empty when it is fine.

    Checks the columns, that required fields have no gaps, that numbers are numbers and that
    prices are positive and finite.
    """
    missing = [c for c in FRAME_COLUMNS if c not in frame.columns]
    if missing:
        return [f"missing column(s) {', '.join(missing)}"]
    if frame.empty:
        return ["no rows"]
    problems = []
    for name in CATEGORICAL_FIELDS:
        gaps = int(frame[name].isna().sum())
        if gaps:
            problems.append(f"{name}: {gaps} missing value(s)")
    for name in (*NUMERIC_FIELDS, "price"):
        if not pd.api.types.is_numeric_dtype(frame[name]):
            problems.append(f"{name}: not numeric (dtype {frame[name].dtype})")
            continue
        values = frame[name].to_numpy(dtype=np.float64)
        gaps = int(np.isnan(values).sum())
        if gaps and name not in OPTIONAL_FIELDS:
            problems.append(f"{name}: {gaps} missing value(s)")
        if np.isinf(values).any():
            problems.append(f"{name}: infinite value(s)")
    if "price" not in " ".join(problems) and (frame["price"] <= 0).any():
        problems.append("price: non-positive value(s)")
    return problems


def frame_hash(frame: pd.DataFrame) -> str:
    """A sha256 of the frame's content (rows and columns in order), for run lineage."""
    row_hashes = pd.util.hash_pandas_object(frame.loc[:, list(FRAME_COLUMNS)], index=False)
    return hashlib.sha256(row_hashes.to_numpy().tobytes()).hexdigest()
