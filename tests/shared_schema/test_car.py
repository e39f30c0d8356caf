import re
from typing import Any

import msgspec
import pytest

from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES, NUMERIC_FIELDS, SCHEMA_VERSION, Car
from shared_schema.car import CODE_PATTERN, TEXT_PATTERN


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


# Values every categorical field refuses: control characters anywhere, whitespace at either end.
SURROUNDED = [
    "{}\n",
    "{}\r\n",
    "\n{}",
    " {}",
    "{} ",
    "\t{}",
    "{}\u00a0",
    "\u3000{}",
    "\u200b{}",
    "{}\ufeff",
    "{}\u2028",
]
CONTROL_INSIDE = ["{}\x00{}", "{}\x1b{}", "{}\x7f{}", "{}\x85{}", "{}\n{}"]


def categorical_cases() -> list[Any]:
    valid = {
        "brand": "KIA",
        "model_name": "RIO",
        "body_type": "седан",
        "color": "чёрный",
        "fuel_type": "бензин",
        "vehicle_transmission": "автомат",
        "drive_type": "передний",
        "n_owners": "3+",
    }
    assert set(valid) == set(CATEGORICAL_FIELDS)
    return [
        pytest.param(field, template.format(value, value), id=f"{field}-{index}")
        for field, value in valid.items()
        for index, template in enumerate(SURROUNDED + CONTROL_INSIDE)
    ]


@pytest.mark.parametrize(("field", "value"), categorical_cases())
def test_categorical_strings_refuse_surrounding_whitespace_and_control_characters(
    car_payload: dict[str, Any], field: str, value: str
) -> None:
    """Every categorical field refuses a value with a control character or padding, naming it."""
    with pytest.raises(msgspec.ValidationError, match=rf"\$\.{field}"):
        msgspec.convert({**car_payload, field: value}, Car)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("color", "серебристый металлик"),
        ("color", "тёмно-синий"),
        ("color", "ж"),
        ("brand", "LAND_ROVER"),
        ("model_name", "3-SERIES"),
    ],
)
def test_inner_spaces_and_codes_are_accepted(
    car_payload: dict[str, Any], field: str, value: str
) -> None:
    """A colour may have inner spaces; codes keep `_` and `-`: the rule only trims the ends."""
    assert getattr(msgspec.convert({**car_payload, field: value}, Car), field) == value


@pytest.mark.parametrize("pattern", [CODE_PATTERN, TEXT_PATTERN])
def test_patterns_mean_the_same_to_python_and_json_schema(pattern: str) -> None:
    """Python re.search (msgspec) and a JSON Schema validator (ECMA-262) accept the same values."""
    import jsonschema_rs  # ships with schemathesis, which reads the OpenAPI document this way

    validator = jsonschema_rs.validator_for({"type": "string", "pattern": pattern})
    python = re.compile(pattern)
    values = [
        template.format(base, base)
        for base in ("RIO", "чёрный", "5ER", "a b")
        for template in ["{}", *SURROUNDED, *CONTROL_INSIDE]
    ]
    for value in values:
        assert bool(python.search(value)) == validator.is_valid(value), repr(value)
    assert not python.search("RIO\n")  # the case `$` alone gets wrong in Python


def test_schema_version_is_a_patch_of_1_0() -> None:
    """The categorical rule is 1.0.1: bundles of 1.0.0 and 1.0.1 stay mutually loadable."""
    from shared_schema.bundle import Manifest, check_compatible, manifest_inputs

    assert SCHEMA_VERSION == "1.0.1"
    old = Manifest(
        sha256="0" * 64,
        schema_version="1.0.0",
        model_name="m",
        model_version="1",
        inputs=manifest_inputs(),
        training_data_hash="h",
        parity_max_rel_diff=0.0,
    )
    check_compatible(old)
    check_compatible(msgspec.structs.replace(old, schema_version=SCHEMA_VERSION), "1.0.0")
