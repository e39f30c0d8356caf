"""The retrain's rows, read from what the pipeline left: the label table, the 2020 splits, Feast.

What the rows are is `training.core.retrain`'s (pure); this reads them, checks there are enough,
and writes the two slices the drift demo and the drift job read again (`paths.retrain_holdout`,
`paths.retrain_reference`).
"""

from typing import Final

import pandas as pd

from shared_schema import FIELD_NAMES
from training.config import Params, PathParams
from training.core.intervals import MIN_BIN_ROWS
from training.core.market_index import period_of
from training.core.retrain import HOLDOUT_COLUMNS, RetrainRows, newest_slice, retrain_rows
from training.core.splits import assign_splits
from training.errors import PipelineError
from training.io import feast_store, files, splits

#: The label table's columns the retrain reads.
LABEL_COLUMNS: Final = ("event_timestamp", "listing_id", "price", "source")


def read_slices(params: Params) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The label table, and the new market's labelled listings as (older, newest).

    Raises:
        PipelineError: No labels, no new-market listings, or too few for a holdout of
            `retrain.min_holdout_rows` and some older rows to train on.
    """
    settings = params.retrain
    labels = files.read_parquet(params.paths.labels, "labels", "car-train features", LABEL_COLUMNS)
    new = labels.loc[
        labels["source"] == settings.source, ["listing_id", "event_timestamp", "price"]
    ]
    if new.empty:
        raise PipelineError(
            f"{params.paths.labels}: no labelled listings of source {settings.source!r} "
            "(retrain.source) to retrain on; run `car-train ingest` and `car-train features`"
        )
    older, newest = newest_slice(new, settings.holdout_fraction)
    if len(newest) < settings.min_holdout_rows or older.empty:
        raise PipelineError(
            f"{len(new)} labelled {settings.source} listings give a holdout of {len(newest)} "
            f"and {len(older)} older rows (retrain.holdout_fraction "
            f"{settings.holdout_fraction:g}); the gate needs retrain.min_holdout_rows "
            f"{settings.min_holdout_rows} and training needs older rows"
        )
    return labels, older, newest


def assemble(
    params: Params, labels: pd.DataFrame, older: pd.DataFrame, newest: pd.DataFrame
) -> RetrainRows:
    """The retrain's frames: Feast's training frame of both slices, with the 2020 splits.

    A seeded `retrain.val_fraction` of the older listings is kept for validation.

    Raises:
        PipelineError: Too few validation rows for the price interval, Feast failed, or the
            splits do not match the labels.
    """
    paths, settings = params.paths, params.retrain
    draw = assign_splits(
        older["listing_id"],
        seed=settings.seed,
        val_fraction=settings.val_fraction,
        test_fraction=0.0,
    )
    val_ids = draw.loc[draw["split"] == "val", "listing_id"]
    if len(val_ids) < MIN_BIN_ROWS:
        raise PipelineError(
            f"{len(older)} older {settings.source} listings leave {len(val_ids)} validation "
            f"rows (retrain.val_fraction {settings.val_fraction:g}); the price interval "
            f"needs {MIN_BIN_ROWS}"
        )
    store = params.feature_store
    entities = pd.concat([older, newest], ignore_index=True)
    frame = feast_store.applied_training_frame(store.repo_path, entities, store.feature_view)
    try:
        return retrain_rows(
            frame,
            (splits.read(paths.splits, "train"), splits.read(paths.splits, "val")),
            holdout_ids=newest["listing_id"],
            val_ids=val_ids,
            times=labels.set_index("listing_id")["event_timestamp"],
            half_life_days=settings.half_life_days,
        )
    except ValueError as exc:
        raise PipelineError(f"{paths.splits} vs {paths.labels}: {exc}; re-run split") from exc


def write_slices(paths: PathParams, rows: RetrainRows) -> None:
    """Write the holdout (what a replay sends) and the calibration rows (the drift reference)."""
    files.write_parquet(rows.holdout.loc[:, list(HOLDOUT_COLUMNS)], paths.retrain_holdout)
    reference = rows.calibration.loc[:, ["listing_id", *FIELD_NAMES, "price"]]
    files.write_parquet(reference, paths.retrain_reference)


def one_period(times: pd.Series, frame: pd.DataFrame, what: str) -> str:
    """The one market period (UTC day) of `frame`'s listings, by their event times.

    Raises:
        PipelineError: A listing has no event time, or the rows span several periods.
    """
    found = times.reindex(frame["listing_id"])
    if found.isna().any():
        raise PipelineError(f"{what}: {int(found.isna().sum())} listing(s) without a label")
    periods = sorted(str(p) for p in set(period_of(found)))
    if len(periods) != 1:
        raise PipelineError(f"{what} spans the market periods {', '.join(periods)}, not one")
    return periods[0]
