from typing import Any

import msgspec
import pytest

from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES, NUMERIC_FIELDS, SCHEMA_VERSION, Car


def test_valid_car_is_accepted(car_payload: dict[str, Any]) -> None:
    """A plausible car converts to a Car with every field kept."""
    car = msgspec.convert(car_payload, Car)
    assert msgspec.to_builtins(car) == car_payload


def test_engine_displacement_is_optional(car_payload: dict[str, Any]) -> None:
    """A car without displacement (electric, or unknown) is valid and gets None."""
    raw = car_payload
    del raw["engine_displacement"]
    assert msgspec.convert(raw, Car).engine_displacement is None
    raw["engine_displacement"] = None
    assert msgspec.convert(raw, Car).engine_displacement is None


def test_json_round_trip(car_payload: dict[str, Any]) -> None:
    """A Car encodes to JSON and decodes back unchanged, Cyrillic included."""
    car = msgspec.convert(car_payload, Car)
    assert msgspec.json.decode(msgspec.json.encode(car), type=Car) == car


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("brand", "bmw", "Expected `str` matching regex"),
        ("brand", "", "Expected `str` of length >= 1"),
        ("model_name", 5, "Expected `str`, got `int`"),
        ("body_type", "тачанка", "Invalid enum value 'тачанка'"),
        ("color", "", "Expected `str` of length >= 1"),
        ("fuel_type", "керосин", "Invalid enum value 'керосин'"),
        ("model_year", 1800, "Expected `int` >= 1900"),
        ("production_year", 2100, "Expected `int` <= 2035"),
        ("production_year", "2012", "Expected `int`, got `str`"),
        ("n_doors", 0, "Expected `int` >= 1"),
        ("vehicle_transmission", "auto", "Invalid enum value 'auto'"),
        ("engine_power", -1.0, "Expected `float` >= 5.0"),
        ("engine_power", float("nan"), "Expected `float` >= 5.0"),
        ("engine_displacement", 503.0, "Expected `float` <= 10.0"),
        ("mileage", -5, "Expected `int` >= 0"),
        ("mileage", 1.5, "Expected `int`, got `float`"),
        ("drive_type", "4x4", "Invalid enum value '4x4'"),
        ("n_owners", "5", "Invalid enum value '5'"),
        ("is_original_techpass", 2, "Expected `int` <= 1"),
        ("is_lefthand_drive", True, "Expected `int`, got `bool`"),
    ],
)
def test_bad_value_is_rejected_naming_the_field(
    car_payload: dict[str, Any], field: str, value: object, message: str
) -> None:
    """Each kind of bad value fails validation with a message that names the field."""
    raw = car_payload
    raw[field] = value
    with pytest.raises(msgspec.ValidationError) as excinfo:
        msgspec.convert(raw, Car)
    assert message in str(excinfo.value)
    assert f"$.{field}" in str(excinfo.value)


@pytest.mark.parametrize("field", [f for f in FIELD_NAMES if f != "engine_displacement"])
def test_missing_required_field_is_rejected(car_payload: dict[str, Any], field: str) -> None:
    """Every field but engine_displacement is required, and the error names it."""
    raw = car_payload
    del raw[field]
    with pytest.raises(msgspec.ValidationError, match=f"missing required field `{field}`"):
        msgspec.convert(raw, Car)


def test_unknown_field_is_rejected(car_payload: dict[str, Any]) -> None:
    """A field outside the contract is an error naming it, not silently ignored."""
    raw = car_payload | {"price": 1_000_000}
    with pytest.raises(msgspec.ValidationError, match="unknown field `price`"):
        msgspec.convert(raw, Car)


def test_field_lists_partition_the_schema() -> None:
    """Categorical and numeric field lists cover every field exactly once."""
    assert len(FIELD_NAMES) == 16
    assert set(CATEGORICAL_FIELDS) | set(NUMERIC_FIELDS) == set(FIELD_NAMES)
    assert not set(CATEGORICAL_FIELDS) & set(NUMERIC_FIELDS)
    assert SCHEMA_VERSION.count(".") == 2
