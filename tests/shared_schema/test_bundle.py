"""The bundle contract: the manifest round trip, the schema-version rule, the one reader."""

import hashlib
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from shared_schema import SCHEMA_VERSION
from shared_schema.bundle import (
    MANIFEST_FILE,
    MODEL_FILE,
    IncompatibleBundleError,
    IncompleteBundleError,
    InvalidBundleError,
    Manifest,
    ManifestInput,
    check_compatible,
    decode_manifest,
    encode_manifest,
    grouped_inputs,
    manifest_inputs,
    read_verified,
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
        (
            [ManifestInput("categorical", "string", ("brand", "seats"))],
            "price",
            "input 'categorical' column 'seats' is not a Car field",
        ),
        (
            [ManifestInput("numeric", "float", ("mileage", "brand"))],
            "price",
            "input 'numeric' column 'brand' is 'float', the schema says 'string'",
        ),
        (
            [ManifestInput("brand", "string", ("brand", "color"))],
            "price",
            "groups fields \\['brand', 'color'\\] under a Car field's name",
        ),
        (
            [*grouped_inputs(), ManifestInput("mileage", "float")],
            "price",
            "name a field twice: \\['mileage'\\]",
        ),
    ],
)
def test_inputs_and_output_must_match_the_schema(
    inputs: list[ManifestInput], output: str, message: str
) -> None:
    """An input outside the schema, a wrong type, a duplicate or a wrong output is refused."""
    with pytest.raises(IncompatibleBundleError, match=message):
        check_compatible(_manifest(inputs=inputs, output=output))


MODEL_BYTES = b"not parsed by the reader: only hashed"


def _write(directory: Path, model: bytes = MODEL_BYTES, **changes: object) -> Path:
    """A bundle of `model` whose manifest hashes it (or says `changes`) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MODEL_FILE).write_bytes(model)
    manifest = _manifest(sha256=hashlib.sha256(model).hexdigest(), **changes)
    (directory / MANIFEST_FILE).write_bytes(encode_manifest(manifest))
    return directory


def test_read_verified_returns_the_bytes_it_checked(tmp_path: Path) -> None:
    """A whole, compatible bundle reads as the files' exact bytes and the decoded manifest."""
    bundle = read_verified(_write(tmp_path))
    assert bundle.model_bytes == MODEL_BYTES
    assert bundle.manifest_bytes == (tmp_path / MANIFEST_FILE).read_bytes()
    assert bundle.manifest == decode_manifest(bundle.manifest_bytes)


def _no_model(directory: Path) -> None:
    (directory / MODEL_FILE).unlink()


def _model_is_a_directory(directory: Path) -> None:
    (directory / MODEL_FILE).unlink()
    (directory / MODEL_FILE).mkdir()


def _other_model(directory: Path) -> None:
    (directory / MODEL_FILE).write_bytes(b"a copy stopped half-way")


def _not_json(directory: Path) -> None:
    (directory / MANIFEST_FILE).write_bytes(b"{")


def _future_major(directory: Path) -> None:
    _write(directory, schema_version="2.0.0")


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        (_no_model, IncompleteBundleError, f"{MODEL_FILE}: bundle file not found"),
        (_model_is_a_directory, InvalidBundleError, f"{MODEL_FILE}: cannot read: Is a directory"),
        (_other_model, IncompleteBundleError, f"{MODEL_FILE}: sha256 [0-9a-f]{{64}} does not"),
        (
            _not_json,
            InvalidBundleError,
            f"{MANIFEST_FILE}: invalid manifest: Input data was truncated",
        ),
        (_future_major, IncompatibleBundleError, f"{MANIFEST_FILE}: bundle schema version 2.0.0"),
    ],
    ids=["no_model", "unreadable_model", "other_model", "manifest_not_json", "future_major"],
)
def test_read_verified_refuses_naming_file_and_fault(
    tmp_path: Path, damage: Callable[[Path], None], error: type[Exception], message: str
) -> None:
    """Each broken bundle raises its kind of InvalidBundleError naming the file and the fault."""
    _write(tmp_path)
    damage(tmp_path)
    with pytest.raises(error, match=message) as raised:
        read_verified(tmp_path)
    assert isinstance(raised.value, InvalidBundleError)
    assert str(tmp_path) in str(raised.value)


def test_a_missing_bundle_directory_is_incomplete(tmp_path: Path) -> None:
    """No directory at all is a bundle not there (yet), naming the manifest it looked for."""
    with pytest.raises(IncompleteBundleError, match=f"{MANIFEST_FILE}: bundle file not found"):
        read_verified(tmp_path / "absent")


def test_grouped_inputs_round_trip_and_single_ones_keep_their_old_bytes() -> None:
    """`fields` is written only for a grouped input: a per-field manifest is as it was."""
    grouped = _manifest(inputs=grouped_inputs())
    assert decode_manifest(encode_manifest(grouped)) == grouped
    check_compatible(grouped)
    single = msgspec.json.decode(encode_manifest(_manifest()))
    assert single["inputs"][0] == {"name": "brand", "type": "string"}
    fed = [name for item in grouped.inputs for name in item.columns]
    assert sorted(fed) == sorted(item.name for item in manifest_inputs())
