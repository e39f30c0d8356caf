from shared_schema.car import (
    CATEGORICAL_FIELDS,
    FIELD_NAMES,
    NUMERIC_FIELDS,
    OPTIONAL_FIELDS,
    SCHEMA_VERSION,
    Car,
)

__all__ = [
    "CATEGORICAL_FIELDS",
    "FIELD_NAMES",
    "NUMERIC_FIELDS",
    "OPTIONAL_FIELDS",
    "SCHEMA_VERSION",
    "Car",
]
