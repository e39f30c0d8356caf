"""Feast definitions: the `listing` entity and the car feature view over `paths.features`.

Applied by `car-train feature-store` (which runs `feast apply` in this folder); the feature
table is written by `car-train features`. The view's name and its source file come from the
params.yaml of the project this repo sits in, the pipeline's one home for them: Feast imports
this module to apply it, so they are read here, once, at import.
"""

import os
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, PrimitiveFeastType, String

from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES
from training.config import load_params

_REPO = Path(__file__).resolve().parent
_PARAMS = load_params(_REPO.parent / "params.yaml")

# Fields stored as floats; the other numeric fields are whole numbers.
_FLOAT_FIELDS = frozenset({"engine_power", "engine_displacement"})


def _feast_type(name: str) -> PrimitiveFeastType:
    """The Feast type of a contract field (the contract itself is shared_schema.Car)."""
    if name in CATEGORICAL_FIELDS:
        return String
    return Float64 if name in _FLOAT_FIELDS else Int64


listing = Entity(
    name="listing",
    join_keys=["listing_id"],
    value_type=ValueType.STRING,
    description="One auto.ru listing (exact duplicates collapsed at ingest).",
)

car_source = FileSource(
    name="car_features_source",
    # Relative to this folder, as Feast resolves it (paths.features is relative to the project).
    path=os.path.relpath(_REPO.parent / _PARAMS.paths.features, _REPO),
    timestamp_field="event_timestamp",
)

car_features = FeatureView(
    name=_PARAMS.feature_store.feature_view,
    entities=[listing],
    # A listing's fields are fixed when it is published: no expiry for point-in-time joins.
    ttl=timedelta(days=0),
    schema=[
        Field(name="source", dtype=String),
        *(Field(name=name, dtype=_feast_type(name)) for name in FIELD_NAMES),
    ],
    # Training reads the offline store only; nothing is materialised for online serving.
    online=False,
    source=car_source,
    tags={"team": "car-price"},
)
