import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from inference.model import ORDERED_RUN, WARMUP_CAR, BundleError, load_bundle, pricing_order
from shared_schema import SCHEMA_VERSION


def test_valid_bundle_loads_and_predicts(model_bundle: Path) -> None:
    """A bundle made to the contract loads, keeps its manifest and prices a car."""
    model = load_bundle(model_bundle)
    assert model.version == "1"
    assert model.manifest.model_name == "car-price"
    (price,) = model.predict([WARMUP_CAR]).tolist()
    assert 1e5 < price < 5e7


def _distinct_cars(count: int) -> list[Any]:
    """`count` cars in no grouped order: brands alternate, each car its own mileage."""
    return [
        msgspec.structs.replace(
            WARMUP_CAR,
            brand=("TOYOTA", "BMW", "AUDI")[index % 3],
            production_year=2000 + index % 17,
            engine_power=60.0 + index,
            mileage=7_000 * (count - index),
        )
        for index in range(count)
    ]


def _fed(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The brands of the cars each run feeds the graph, in the order it feeds them."""
    import inference.model

    fed: list[list[str]] = []
    feeds = inference.model.feeds_from_cars

    def spy(cars: Sequence[Any], inputs: Any) -> Any:
        fed.append([car.brand for car in cars])
        return feeds(cars, inputs)

    monkeypatch.setattr(inference.model, "feeds_from_cars", spy)
    return fed


def test_a_long_run_is_priced_grouped_and_answered_in_the_cars_order(
    tmp_path: Path, bundle_writer: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """From ORDERED_RUN cars up the run is reordered, and each car still gets its own prices."""
    model = load_bundle(bundle_writer(tmp_path, interval=True))
    cars = _distinct_cars(ORDERED_RUN)
    order = pricing_order(cars)
    assert order is not None
    assert order != list(range(len(cars)))
    fed = _fed(monkeypatch)
    together = model.run(cars)
    assert fed == [sorted(car.brand for car in cars)]  # the graph saw them grouped
    alone = [model.run([car]) for car in cars]
    # Every car's price differs from the others', so a car given another's result would show.
    assert len(set(together.prices)) == len(cars)
    assert together.prices == [one.prices[0] for one in alone]
    assert together.lower == [one.lower[0] for one in alone if one.lower is not None]
    assert together.upper == [one.upper[0] for one in alone if one.upper is not None]


def test_a_shorter_run_is_priced_in_the_cars_order(
    tmp_path: Path, bundle_writer: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below ORDERED_RUN cars no reordering; a model without an interval orders a long run too."""
    model = load_bundle(bundle_writer(tmp_path))
    cars = _distinct_cars(ORDERED_RUN - 1)
    assert pricing_order(cars) is None
    fed = _fed(monkeypatch)
    model.run(cars)
    assert fed == [[car.brand for car in cars]]
    longer = _distinct_cars(ORDERED_RUN)
    prices = model.predict(longer).tolist()
    assert prices == [model.predict([car]).tolist()[0] for car in longer]
    assert model.run(longer).lower is None


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


def _grouped_bundle(directory: Path, string_columns: int) -> Path:
    """A bundle fed the two grouped inputs, price = 1000 + mileage, strings `string_columns` wide.

    The manifest feeds the string input every categorical field, whatever its width.
    """
    import msgspec
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from shared_schema.bundle import MANIFEST_FILE, MODEL_FILE, Manifest, grouped_inputs

    strings, numbers = grouped_inputs()
    mileage = numbers.fields.index("mileage")
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["numeric", "mileage_at"], ["mileage"], axis=1),
            helper.make_node("Add", ["mileage", "base"], ["price"]),
        ],
        "grouped",
        [
            helper.make_tensor_value_info(
                "categorical", TensorProto.STRING, [None, string_columns]
            ),
            helper.make_tensor_value_info(
                "numeric", TensorProto.FLOAT, [None, len(numbers.fields)]
            ),
        ],
        [helper.make_tensor_value_info("price", TensorProto.FLOAT, [None, 1])],
        initializer=[
            numpy_helper.from_array(np.array([mileage], dtype=np.int64), "mileage_at"),
            numpy_helper.from_array(np.array([1000.0], dtype=np.float32), "base"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    model_bytes = model.SerializeToString()
    manifest = Manifest(
        sha256=hashlib.sha256(model_bytes).hexdigest(),
        schema_version=SCHEMA_VERSION,
        model_name="car-price",
        model_version="1",
        inputs=[strings, numbers],
        training_data_hash="test",
        parity_max_rel_diff=0.0,
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MODEL_FILE).write_bytes(model_bytes)
    (directory / MANIFEST_FILE).write_bytes(msgspec.json.encode(manifest))
    onnx.checker.check_model(model)
    return directory


def test_a_bundle_fed_grouped_inputs_loads_and_prices_each_car(tmp_path: Path) -> None:
    """The server feeds a grouped input its fields side by side, one row per car."""
    import msgspec

    model = load_bundle(_grouped_bundle(tmp_path, string_columns=8))
    cars = [msgspec.structs.replace(WARMUP_CAR, mileage=m) for m in (0.0, 5.0, 123.0)]
    assert model.predict(cars).ravel().tolist() == [1000.0, 1005.0, 1123.0]


def test_a_grouped_input_of_another_width_than_the_manifest_is_refused(tmp_path: Path) -> None:
    """A graph whose string input is 3 columns wide, for 8 fields, is refused naming both."""
    with pytest.raises(BundleError, match="'categorical' has 3 columns, the manifest feeds it 8"):
        load_bundle(_grouped_bundle(tmp_path, string_columns=3))
