"""The bundle contract: the manifest round trip, the schema-version rule, the feed builder."""

import math

import msgspec
import numpy as np
import pytest

from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES, SCHEMA_VERSION, Car
from shared_schema.bundle import (
    IncompatibleBundleError,
    Manifest,
    ManifestInput,
    build_feeds,
    check_compatible,
    decode_manifest,
    encode_manifest,
    feeds_from_cars,
    manifest_inputs,
    schema_version_refusal,
)


def _manifest(**changes: object) -> Manifest:
    manifest = Manifest(
        sha256="0" * 64,
        schema_version=SCHEMA_VERSION,
        model_name="car-price",
        model_version="1",
        inputs=manifest_inputs(),
        training_data_hash="t",
        parity_max_rel_diff=0.0,
    )
    return msgspec.structs.replace(manifest, **changes)


def test_manifest_round_trips_through_its_bytes() -> None:
    """What the exporter encodes, every reader decodes to the same Struct."""
    manifest = _manifest(categories={"color": ["чёрный"]}, metrics={"mape": 0.12})
    data = encode_manifest(manifest)
    assert "чёрный" in data.decode("utf-8")
    assert decode_manifest(data) == manifest


def test_unknown_manifest_keys_are_ignored() -> None:
    """A newer exporter may add keys: an older reader still decodes the manifest."""
    raw = msgspec.to_builtins(_manifest())
    raw["added_later"] = {"x": 1}
    assert decode_manifest(msgspec.json.encode(raw)) == _manifest()


def test_a_missing_manifest_key_is_named() -> None:
    """A manifest without a required key fails with the key's name."""
    raw = msgspec.to_builtins(_manifest())
    del raw["model_version"]
    with pytest.raises(msgspec.ValidationError, match="model_version"):
        decode_manifest(msgspec.json.encode(raw))


@pytest.mark.parametrize(
    ("bundle_version", "reader_version"),
    [("1.0.0", "1.0.0"), ("1.0.0", "1.3.0"), ("1.3.0", "1.3.0"), ("1.3.7", "1.3.0")],
)
def test_same_major_and_no_newer_minor_is_compatible(
    bundle_version: str, reader_version: str
) -> None:
    """An older or equal minor of the same major loads, whatever the patch."""
    check_compatible(_manifest(schema_version=bundle_version), reader_version)


@pytest.mark.parametrize(
    ("bundle_version", "reader_version", "message"),
    [
        ("1.4.0", "1.3.0", "newer than 1.3.0"),
        ("2.0.0", "1.3.0", "major versions differ"),
        ("1.0.0", "2.0.0", "major versions differ"),
    ],
)
def test_newer_minor_or_other_major_is_refused(
    bundle_version: str, reader_version: str, message: str
) -> None:
    """A newer minor (fields the reader may not know) or another major is refused."""
    with pytest.raises(IncompatibleBundleError, match=message):
        check_compatible(_manifest(schema_version=bundle_version), reader_version)


@pytest.mark.parametrize(
    ("version", "reader_version", "refusal"),
    [
        ("1.2.9", "1.3.0", None),
        ("1.3.0", "1.3.0", None),
        ("1.4.0", "1.3.0", "newer than 1.3.0"),
        ("2.0.0", "1.3.0", "major versions differ"),
    ],
)
def test_schema_version_rule_is_one_function(
    version: str, reader_version: str, refusal: str | None
) -> None:
    """The rule bundles and log records share: None when readable, else the reason."""
    result = schema_version_refusal(version, reader_version)
    if refusal is None:
        assert result is None
    else:
        assert result is not None
        assert refusal in result


@pytest.mark.parametrize(
    ("inputs", "output", "message"),
    [
        ([ManifestInput("seats", "float")], "price", "'seats' is not a Car field"),
        ([ManifestInput("brand", "float")], "price", "the schema says 'string'"),
        ([ManifestInput("brand", "string")] * 2, "price", "twice"),
        (manifest_inputs(), "prediction", "output is 'prediction'"),
    ],
)
def test_inputs_and_output_must_match_the_schema(
    inputs: list[ManifestInput], output: str, message: str
) -> None:
    """An input outside the schema, a wrong type, a duplicate or a wrong output is refused."""
    with pytest.raises(IncompatibleBundleError, match=message):
        check_compatible(_manifest(inputs=inputs, output=output))


def test_feeds_are_columns_of_the_graph_inputs_only() -> None:
    """Strings become object [N, 1], numbers float32 [N, 1] with NaN; only asked fields."""
    car = Car(
        brand="BMW",
        model_name="5ER",
        body_type="седан",
        color="чёрный",
        fuel_type="бензин",
        model_year=2010,
        production_year=2012,
        n_doors=4,
        vehicle_transmission="автомат",
        engine_power=245.0,
        engine_displacement=None,
        mileage=120_000,
        drive_type="задний",
        n_owners="2",
        is_original_techpass=1,
        is_lefthand_drive=1,
    )
    feeds = feeds_from_cars([car, car])
    assert list(feeds) == list(FIELD_NAMES)
    for name, array in feeds.items():
        assert array.shape == (2, 1)
        assert array.dtype == (object if name in CATEGORICAL_FIELDS else np.float32)
    assert math.isnan(feeds["engine_displacement"][0, 0])
    assert feeds["brand"][1, 0] == "BMW"
    some = feeds_from_cars([car], names=("brand", "mileage"))
    assert list(some) == ["brand", "mileage"]
    assert build_feeds({"mileage": [1.0, None]}, names=("mileage",))["mileage"].dtype == np.float32
