"""`car-train features`: validated listings → the feature table and the label table."""

import logging

from training.config import Params
from training.core.features import LISTING_REQUIRED, build_features, build_labels
from training.io import files

log = logging.getLogger(__name__)


def run(params: Params) -> None:
    """Build `paths.features` and `paths.labels` from the ingest output."""
    paths = params.paths
    with files.all_or_nothing(paths.features, paths.labels):
        listings = files.read_parquet(
            paths.listings, "listings", "car-train ingest", LISTING_REQUIRED
        )
        features = build_features(listings)
        files.write_parquet(features, paths.features)
        files.write_parquet(build_labels(listings), paths.labels)
    log.info("wrote %d feature rows to %s", len(features), paths.features)
