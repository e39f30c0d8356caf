"""`car-train split`: the training source → train / val / test frames, fetched through Feast.

The frames are read once through Feast's point-in-time join and saved per split under
`split.splits_dir`, so every later stage and every model version is judged on the same rows.
"""

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from training.config import Params
from training.core.dataset import FRAME_COLUMNS, frame_hash, frame_problems
from training.core.splits import SPLITS, assign_splits
from training.errors import PipelineError
from training.io import feast_store, files
from training.jobs import features, outputs

log = logging.getLogger(__name__)

SUMMARY_FILE = "dataset.json"


def split_path(params: Params, split: str) -> Path:
    """The parquet file of one split."""
    return Path(params.split.splits_dir) / f"{split}.parquet"


def run(params: Params) -> dict[str, Any]:
    """Split the training source's listings and save each split's training frame.

    Returns:
        The summary (rows per split, content hashes), also written to `dataset.json`.
    """
    directory = Path(params.split.splits_dir)
    targets = [split_path(params, s) for s in SPLITS] + [directory / SUMMARY_FILE]
    with outputs.all_or_nothing(*targets):
        labels = _read_labels(Path(params.data.features_dir) / features.LABELS_FILE)
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
        frame = feast_store.training_frame(
            Path(params.feature_store.repo_path), entities, params.feature_store.feature_view
        )
        problems = frame_problems(frame)
        if problems:
            raise PipelineError("Feast training frame: " + "; ".join(problems))
        frame = frame.merge(assignment, on="listing_id", how="inner", validate="one_to_one")
        summary: dict[str, Any] = {"source": params.split.source, "splits": {}}
        for split in SPLITS:
            part = frame.loc[frame["split"] == split, list(FRAME_COLUMNS)]
            part = part.sort_values("listing_id").reset_index(drop=True)
            files.write_parquet(part, split_path(params, split))
            summary["splits"][split] = {"rows": len(part), "sha256": frame_hash(part)}
        files.write_json(summary, directory / SUMMARY_FILE)
    log.info(
        "splits of %s: %s",
        params.split.source,
        ", ".join(f"{s} {v['rows']}" for s, v in summary["splits"].items()),
    )
    return summary


def read_split(params: Params, split: str) -> pd.DataFrame:
    """Read one saved split and check it.

    Raises:
        PipelineError: The file is missing, not parquet, or fails the frame checks.
    """
    path = split_path(params, split)
    frame = files.read_parquet(path, "split", "car-train split")
    problems = frame_problems(frame)
    if problems:
        raise PipelineError(f"{path}: " + "; ".join(problems))
    return frame


def _read_labels(path: Path) -> pd.DataFrame:
    required = ("event_timestamp", "listing_id", "price", "source")
    return files.read_parquet(path, "labels", "car-train features", required)
