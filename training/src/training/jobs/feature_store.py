"""`car-train feature-store`: `feast apply`, materialize, and a training-frame check."""

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from training.config import Params
from training.errors import PipelineError
from training.io import feast_store, files
from training.jobs import features, outputs

log = logging.getLogger(__name__)

REPORT_FILE = "feature_store.json"


def run(params: Params) -> dict[str, Any]:
    """Register the feature view, fill the online store, and check the offline join.

    The check fetches the training frame for every listing through Feast's point-in-time join
    and compares it with the feature table row for row; a mismatch fails the stage.

    Returns:
        The stage report (also written to `reports_dir/feature_store.json`).
    """
    repo = Path(params.feature_store.repo_path)
    report_path = Path(params.data.reports_dir) / REPORT_FILE
    features_path = Path(params.data.features_dir) / features.FEATURES_FILE
    labels_path = Path(params.data.features_dir) / features.LABELS_FILE
    with outputs.all_or_nothing(report_path):
        feast_store.apply(repo)
        # feature_repo/features.py names its parquet file itself: it must be the one
        # `features` wrote, or Feast would serve another table than params.yaml says.
        served = feast_store.source_path(repo, params.feature_store.feature_view)
        if served != features_path.resolve():
            raise PipelineError(
                f"{repo}: feature view {params.feature_store.feature_view!r} reads {served}, "
                f"but data.features_dir holds {features_path.resolve()}; make them agree"
            )
        feast_store.materialize(repo)
        table = pd.read_parquet(features_path)
        labels = pd.read_parquet(labels_path)
        frame = feast_store.training_frame(
            repo,
            labels[["listing_id", "event_timestamp", "price"]],
            params.feature_store.feature_view,
        )
        mismatches = compare_with_table(frame, table)
        if mismatches:
            raise PipelineError(
                "Feast training frame differs from the feature table: " + "; ".join(mismatches)
            )
        report = {
            "feature_view": params.feature_store.feature_view,
            "rows": len(frame),
            "columns": sorted(frame.columns),
            "equals_feature_table": True,
        }
        files.write_json(report, report_path)
    log.info("Feast training frame: %d rows, equal to %s", len(frame), features_path)
    return report


def compare_with_table(frame: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """Compare a Feast training frame with the feature table it was built from.

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
