"""Retraining on new market data: the newest labelled slice, recency weights. Pure functions.

The newest slice is defined here once: the gate scores both models on it, and the drift demo
replays exactly these listings (`paths.retrain_holdout`).
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shared_schema import FIELD_NAMES
from training.core.dataset import FRAME_COLUMNS

#: Columns of the written holdout (`paths.retrain_holdout`): what a replay sends and scores.
HOLDOUT_COLUMNS: tuple[str, ...] = ("listing_id", "event_timestamp", *FIELD_NAMES, "price")

#: The order that defines "newest": the listing's event time, ties broken by listing id.
ORDER: tuple[str, str] = ("event_timestamp", "listing_id")

_SEP = "|"


def newest_slice(labels: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split labelled listings into the older rows and the newest `fraction` of them.

    Listings are ordered by `ORDER`; the last ⌈fraction · n⌉ form the slice, so every
    listing in it is at least as new as every older one, and the result does not depend on the
    order rows arrive in.

    Args:
        labels: Rows with `event_timestamp` and unique `listing_id`.
        fraction: The slice's share of the rows, in (0, 1).

    Returns:
        (older, newest), each sorted by `ORDER`, index reset.

    Raises:
        ValueError: Listing ids are not unique, or the fraction is outside (0, 1).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout fraction must be in (0, 1), got {fraction}")
    if labels["listing_id"].duplicated().any():
        raise ValueError("listing ids are not unique")
    ordered = labels.sort_values(list(ORDER), kind="stable").reset_index(drop=True)
    cut = len(ordered) - math.ceil(fraction * len(ordered))
    return ordered.iloc[:cut].reset_index(drop=True), ordered.iloc[cut:].reset_index(drop=True)


def slice_key(row: pd.Series) -> str:
    """A row's position in `ORDER` as text (ISO time | listing id), for registry tags."""
    return f"{pd.Timestamp(row['event_timestamp']).isoformat()}{_SEP}{row['listing_id']}"


def rows_after(rows: pd.DataFrame, trained_through: str | None) -> pd.DataFrame:
    """The rows that come after `trained_through` (a `slice_key`) in `ORDER`; all if None."""
    if not trained_through:
        return rows
    time, listing_id = _parse_key(trained_through)
    stamps = pd.to_datetime(rows["event_timestamp"], utc=True)
    newer = (stamps > time) | ((stamps == time) & (rows["listing_id"].astype(str) > listing_id))
    return rows.loc[newer.to_numpy()]


def _parse_key(key: str) -> tuple[pd.Timestamp, str]:
    time, _, listing_id = key.partition(_SEP)
    return pd.Timestamp(time), listing_id


def precedes(trained_through: str, holdout_from: str) -> bool:
    """Whether a model trained on rows up to `trained_through` never saw `holdout_from` or later.

    Both are `slice_key`s. A model that trained on rows up to key k saw no holdout row when k
    comes strictly before the holdout's first row in `ORDER`.
    """
    return _parse_key(trained_through) < _parse_key(holdout_from)


def recency_weights(
    timestamps: pd.Series, newest: pd.Timestamp, half_life_days: float
) -> np.ndarray:
    """Sample weights that halve every `half_life_days` before `newest`.

    Args:
        timestamps: Each row's event time (timezone-aware, like `newest`).
        newest: The time that weighs 1 (the newest training row's).
        half_life_days: Age at which a row weighs one half.

    Returns:
        float64 weights in (0, 1] (rows newer than `newest` weigh 1).
    """
    age = (newest - pd.to_datetime(timestamps)).dt.total_seconds().to_numpy(np.float64)
    days = np.clip(age, 0.0, None) / 86_400.0
    return np.asarray(np.power(0.5, days / half_life_days), dtype=np.float64)


@dataclass(frozen=True)
class RetrainRows:
    """The retrain's rows: what it fits, stops, calibrates and is judged on, with weights.

    Attributes:
        train: 2020 train split + the older new-market rows outside `calibration`.
        val: 2020 validation split + `calibration`: early stopping.
        calibration: The new-market validation rows: price scale and interval.
        holdout: The newest new-market rows: never trained on, the gate's test set.
        train_weight: Recency weight of each `train` row.
        val_weight: Recency weight of each `val` row.
    """

    train: pd.DataFrame
    val: pd.DataFrame
    calibration: pd.DataFrame
    holdout: pd.DataFrame
    train_weight: np.ndarray
    val_weight: np.ndarray


def retrain_rows(
    new_frame: pd.DataFrame,
    old_splits: tuple[pd.DataFrame, pd.DataFrame],
    *,
    holdout_ids: pd.Series,
    val_ids: pd.Series,
    times: pd.Series,
    half_life_days: float,
) -> RetrainRows:
    """Assemble the retrain's frames from the new market's frame and the 2020 splits.

    Args:
        new_frame: Every new-market listing (`FRAME_COLUMNS`, e.g. from Feast).
        old_splits: The 2020 train and validation splits.
        holdout_ids: Listing ids of the newest slice (`newest_slice`).
        val_ids: Listing ids of the older new-market rows kept for validation.
        times: Event time by listing id, for every listing of both markets.
        half_life_days: The recency weights' half-life (`recency_weights`).

    Raises:
        ValueError: A listing has no event time.
    """
    is_holdout = new_frame["listing_id"].isin(holdout_ids)
    is_val = new_frame["listing_id"].isin(val_ids) & ~is_holdout
    columns = list(FRAME_COLUMNS)
    new_train = new_frame.loc[~is_holdout & ~is_val, columns]
    calibration = new_frame.loc[is_val, columns].reset_index(drop=True)
    train = pd.concat([old_splits[0].loc[:, columns], new_train], ignore_index=True)
    val = pd.concat([old_splits[1].loc[:, columns], calibration], ignore_index=True)
    train_times, val_times = (times.reindex(f["listing_id"]) for f in (train, val))
    if train_times.isna().any() or val_times.isna().any():
        raise ValueError("listings without an event time in the labels")
    newest = train_times.max()
    return RetrainRows(
        train=train,
        val=val,
        calibration=calibration,
        holdout=new_frame.loc[is_holdout].reset_index(drop=True),
        train_weight=recency_weights(train_times.reset_index(drop=True), newest, half_life_days),
        val_weight=recency_weights(val_times.reset_index(drop=True), newest, half_life_days),
    )
