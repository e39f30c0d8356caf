import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from inference.model import WARMUP_CAR, BundleError, load_bundle
from shared_schema import SCHEMA_VERSION


def test_valid_bundle_loads_and_predicts(model_bundle: Path) -> None:
    """A bundle made to the contract loads, keeps its manifest and prices a car."""
    model = load_bundle(model_bundle)
    assert model.version == "1"
    assert model.manifest.model_name == "car-price"
    (price,) = model.predict([WARMUP_CAR]).tolist()
    assert 1e5 < price < 5e7


def test_unknown_manifest_keys_are_ignored(
    tmp_path: Path, bundle_writer: Callable[..., Path]
) -> None:
    """Keys the server does not know yet do not stop a bundle (forward compatibility)."""
    bundle_writer(tmp_path, future_key={"anything": 1})
    assert load_bundle(tmp_path).manifest_raw["future_key"] == {"anything": 1}


def test_missing_categories_skip_unknown_counting(
    tmp_path: Path, bundle_writer: Callable[..., Path]
) -> None:
    """Without a `categories` key nothing counts as an unknown category."""
    bundle_writer(tmp_path, categories=None)
    model = load_bundle(tmp_path)
    assert model.unknown_categories([WARMUP_CAR]) == {}


def test_unknown_categories_are_counted_per_field(model_bundle: Path) -> None:
    """Values outside the manifest's vocabulary are counted per field."""
    model = load_bundle(model_bundle)
    # WARMUP_CAR has the colour белый and owners 2, both known; CAMRY and TOYOTA too.
    assert model.unknown_categories([WARMUP_CAR, WARMUP_CAR]) == {}


def _corrupt_model(directory: Path) -> None:
    (directory / "model.onnx").write_bytes(b"garbage")


def _garbage_with_matching_sha(directory: Path) -> None:
    (directory / "model.onnx").write_bytes(b"garbage")
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["sha256"] = hashlib.sha256(b"garbage").hexdigest()
    (directory / "manifest.json").write_text(json.dumps(manifest))


def _drop_manifest_key(directory: Path) -> None:
    manifest = json.loads((directory / "manifest.json").read_text())
    del manifest["model_version"]
    (directory / "manifest.json").write_text(json.dumps(manifest))


def _remove_model(directory: Path) -> None:
    (directory / "model.onnx").unlink()


@pytest.mark.parametrize(
    ("damage", "manifest", "message"),
    [
        (_corrupt_model, {}, "sha256"),
        (_garbage_with_matching_sha, {}, "onnxruntime cannot open"),
        (_drop_manifest_key, {}, "model_version"),
        (_remove_model, {}, "model.onnx: bundle file not found"),
        (None, {"schema_version": "2.0.0"}, "major versions differ"),
        (None, {"output": "prediction"}, "output"),
        (None, {"inputs": [{"name": "brand", "type": "string"}]}, "differ from the manifest"),
        (None, {"inputs": [{"name": "brand", "type": "float"}]}, "the schema says"),
        (None, {"schema_version": "1.99.0"}, "newer than"),
        (None, {"sha256": "not-hex"}, "manifest.json: invalid manifest"),
    ],
)
def test_bad_bundles_are_rejected(
    tmp_path: Path,
    bundle_writer: Callable[..., Path],
    damage: Callable[[Path], None] | None,
    manifest: dict[str, Any],
    message: str,
) -> None:
    """Each way a bundle can be unfit raises BundleError saying why."""
    bundle_writer(tmp_path, **manifest)
    if damage is not None:
        damage(tmp_path)
    with pytest.raises(BundleError, match=message):
        load_bundle(tmp_path)


def test_older_patch_of_the_same_schema_is_accepted(
    tmp_path: Path, bundle_writer: Callable[..., Path]
) -> None:
    """The patch part of the schema version never stops a bundle."""
    major, minor, _ = SCHEMA_VERSION.split(".")
    bundle_writer(tmp_path, schema_version=f"{major}.{minor}.99")
    assert load_bundle(tmp_path).manifest.schema_version == f"{major}.{minor}.99"
