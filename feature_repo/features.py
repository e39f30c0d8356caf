"""Feast definitions: the `listing` entity and the car feature view over data/features.

Applied by `car-train feature-store` (which runs `feast apply` in this folder); the feature
table is written by `car-train features`.
"""

from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, PrimitiveFeastType, String

from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES

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
    path="../data/features/cars.parquet",
    timestamp_field="event_timestamp",
)

car_features = FeatureView(
    name="car_features",
    entities=[listing],
    # A listing's fields are fixed when it is published: no expiry for point-in-time joins.
    ttl=timedelta(days=0),
    schema=[
        Field(name="source", dtype=String),
        *(Field(name=name, dtype=_feast_type(name)) for name in FIELD_NAMES),
        Field(name="listing_year", dtype=Int64),
        Field(name="age_years", dtype=Int64),
        Field(name="km_per_year", dtype=Float64),
    ],
    online=True,
    source=car_source,
    tags={"team": "car-price"},
)
