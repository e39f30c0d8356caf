"""`car-train features`: validated listings → `data/features/{cars,labels}.parquet`."""

import logging
from pathlib import Path

import pandas as pd

from training.config import Params
from training.core.features import LISTING_REQUIRED, build_features, build_labels
from training.io import files
from training.jobs import ingest, outputs

log = logging.getLogger(__name__)

FEATURES_FILE = "cars.parquet"
LABELS_FILE = "labels.parquet"


def run(params: Params) -> tuple[Path, Path]:
    """Build the feature and label tables from the ingest output.

    Returns:
        The paths of the feature table and the label table.
    """
    listings_path = Path(params.data.interim_dir) / ingest.LISTINGS_FILE
    features_path = Path(params.data.features_dir) / FEATURES_FILE
    labels_path = Path(params.data.features_dir) / LABELS_FILE
    with outputs.all_or_nothing(features_path, labels_path):
        listings = _read_listings(listings_path)
        features = build_features(listings)
        files.write_parquet(features, features_path)
        files.write_parquet(build_labels(listings), labels_path)
    log.info("wrote %d feature rows to %s", len(features), features_path)
    return features_path, labels_path


def _read_listings(path: Path) -> pd.DataFrame:
    return files.read_parquet(path, "listings", "car-train ingest", LISTING_REQUIRED)
