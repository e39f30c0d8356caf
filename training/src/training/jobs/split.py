"""`car-train split`: the training source → train / val / test frames, fetched through Feast.

The frames are read once through Feast's point-in-time join and saved per split under
`paths.splits`, so every later step and every model version is judged on the same rows.
The step applies the Feast repo itself first (idempotent): Feast's registry is state, not a
pipeline output, so the step does not rely on one left behind by `feature-store`.
"""

import logging

from training.config import Params
from training.core.splits import SPLITS, assign_splits
from training.errors import PipelineError
from training.io import feast_store, files, splits
from training.records import DatasetSummary

log = logging.getLogger(__name__)

_LABELS = ("event_timestamp", "listing_id", "price", "source")


def run(params: Params) -> DatasetSummary:
    """Split the training source's listings and save each split's training frame.

    Returns:
        The summary (rows per split, content hashes), also saved beside the splits.
    """
    directory = params.paths.splits
    with files.all_or_nothing(directory):
        labels = files.read_parquet(params.paths.labels, "labels", "car-train features", _LABELS)
        labels = labels.loc[labels["source"] == params.split.source]
        if labels.empty:
            raise PipelineError(f"no labelled listings of source {params.split.source!r}")
        assignment = assign_splits(
            labels["listing_id"],
            seed=params.split.seed,
            val_fraction=params.split.val_fraction,
            test_fraction=params.split.test_fraction,
        )
        entities = labels.loc[:, ["listing_id", "event_timestamp", "price"]]
        store = params.feature_store
        frame = feast_store.applied_training_frame(store.repo_path, entities, store.feature_view)
        frame = frame.merge(assignment, on="listing_id", how="inner", validate="one_to_one")
        frames = {
            split: frame.loc[frame["split"] == split]
            .sort_values("listing_id")
            .reset_index(drop=True)
            for split in SPLITS
        }
        summary = splits.write(directory, frames, params.split.source)
    log.info(
        "splits of %s: %s",
        params.split.source,
        ", ".join(f"{s} {summary.of(s).rows}" for s in SPLITS),
    )
    return summary
