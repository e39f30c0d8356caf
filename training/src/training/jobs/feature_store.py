"""`car-train feature-store`: `feast apply`, then a check of the offline point-in-time join.

Nothing is materialised into Feast's online store: nothing reads it (the server scores the
raw fields of each request; the split reads the offline store).
"""

import logging

from training.config import Params
from training.core.features import FEATURE_COLUMNS, LABEL_COLUMNS, compare_with_table
from training.errors import PipelineError
from training.io import feast_store, files
from training.records import FeatureStoreReport

log = logging.getLogger(__name__)


def run(params: Params) -> FeatureStoreReport:
    """Register the feature view, then check the offline join against the feature table.

    The check fetches the training frame for every listing through Feast's point-in-time join
    and compares it with the feature table row for row; a mismatch fails the stage.

    Returns:
        The stage report (also written to `paths.feature_store_report`).
    """
    repo, view = params.feature_store.repo_path, params.feature_store.feature_view
    paths = params.paths
    with files.all_or_nothing(paths.feature_store_report):
        feast_store.apply(repo)
        # The feature repo reads its source path from params.yaml beside it: it must be the
        # table `features` wrote for this params file, or Feast would serve another table.
        served = feast_store.source_path(repo, view)
        if served != paths.features.resolve():
            raise PipelineError(
                f"{repo}: feature view {view!r} reads {served}, but paths.features is "
                f"{paths.features.resolve()}; make them agree"
            )
        table = files.read_parquet(
            paths.features, "features", "car-train features", FEATURE_COLUMNS
        )
        labels = files.read_parquet(paths.labels, "labels", "car-train features", LABEL_COLUMNS)
        frame = feast_store.training_frame(
            repo, labels[["listing_id", "event_timestamp", "price"]], view
        )
        mismatches = compare_with_table(frame, table)
        if mismatches:
            raise PipelineError(
                "Feast training frame differs from the feature table: " + "; ".join(mismatches)
            )
        report = FeatureStoreReport(
            feature_view=view,
            rows=len(frame),
            columns=sorted(frame.columns),
            equals_feature_table=True,
        )
        files.write_json(report, paths.feature_store_report)
    log.info("Feast training frame: %d rows, equal to %s", len(frame), paths.features)
    return report
