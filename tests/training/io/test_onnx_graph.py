"""The exported graph: its contract with the server, parity, unseen values, monotonicity."""

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest

from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES, SCHEMA_VERSION
from shared_schema.bundle import (
    MANIFEST_FILE,
    MODEL_FILE,
    PRICE_OUTPUT,
    ManifestInput,
    MissingInputError,
    decode_manifest,
    grouped_inputs,
    manifest_inputs,
)
from training.core.model import PricePipeline
from training.errors import PipelineError
from training.io import onnx_graph, onnx_scoring
from training.io.exporter import export_bundle, parity


@pytest.fixture(scope="module")
def model_bytes(pipeline: PricePipeline) -> bytes:
    """The serving graph of the session pipeline."""
    return onnx_graph.build_graph(pipeline).SerializeToString()


@pytest.fixture(scope="module")
def inputs(model_bytes: bytes) -> list[ManifestInput]:
    """The graph's own inputs, read from it as the exporter reads them."""
    return onnx_graph.input_spec(onnx.load_from_string(model_bytes))


def _dims(value: onnx.ValueInfoProto) -> list[int | None]:
    return [
        d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim
    ]


def test_inputs_are_the_schema_fields_grouped_by_type(model_bytes: bytes) -> None:
    """Two inputs: the categorical fields' strings [None, 8], then the numbers [None, 8]."""
    graph = onnx.load_from_string(model_bytes).graph
    assert [i.name for i in graph.input] == ["categorical", "numeric"]
    strings, numbers = graph.input
    assert strings.type.tensor_type.elem_type == onnx.TensorProto.STRING
    assert numbers.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert _dims(strings) == [None, len(CATEGORICAL_FIELDS)]
    assert _dims(numbers) == [None, len(FIELD_NAMES) - len(CATEGORICAL_FIELDS)]


def test_input_spec_is_the_graphs_inputs_as_the_manifest_records_them(
    model_bytes: bytes, inputs: list[ManifestInput]
) -> None:
    """The exporter's manifest inputs, read from the built graph, carry every schema field."""
    assert inputs == grouped_inputs()
    assert sorted(name for item in inputs for name in item.columns) == sorted(FIELD_NAMES)
    broken = onnx.load_from_string(model_bytes)
    broken.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.INT64
    with pytest.raises(PipelineError, match="graph input 'categorical' has element type INT64"):
        onnx_graph.input_spec(broken)
    unlisted = onnx.load_from_string(model_bytes)
    del unlisted.metadata_props[:]
    with pytest.raises(PipelineError, match="'categorical' is not a Car field, and the graph"):
        onnx_graph.input_spec(unlisted)


def test_the_graphs_before_issue_21_keep_one_input_per_field(pipeline: PricePipeline) -> None:
    """The comparison forms (`sets`, `chains`) are fed as bundles were: [None, 1] per field."""
    for form in ("sets", "chains"):
        graph = onnx_graph.build_graph(pipeline, forest=form)
        assert onnx_graph.input_spec(graph) == manifest_inputs(), form
        assert all(_dims(value) == [None, 1] for value in graph.graph.input), form


def test_a_frame_missing_a_graph_input_is_named(
    model_bytes: bytes, inputs: list[ManifestInput], cars: dict[str, pd.DataFrame]
) -> None:
    """Rows without a column the graph takes are refused naming it, before any run."""
    rows = cars["test"].head(3).drop(columns=["mileage"])
    with pytest.raises(MissingInputError, match="no column 'mileage': the graph takes it as a"):
        onnx_scoring.frame_feeds(rows, inputs)


def test_output_is_price_float32_column(model_bytes: bytes) -> None:
    """The only output is `price`, float32, [None, 1]."""
    (output,) = onnx.load_from_string(model_bytes).graph.output
    assert output.name == "price"
    assert output.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert _dims(output) == [None, 1]


def test_graph_matches_pipeline_on_unseen_and_missing_values(
    model_bytes: bytes,
    inputs: list[ManifestInput],
    pipeline: PricePipeline,
    unseen_cars: pd.DataFrame,
) -> None:
    """Graph and LightGBM pipeline agree within 1e-4 with unseen categories and NaN displacement."""
    assert unseen_cars["engine_displacement"].isna().sum() > 10
    assert parity(model_bytes, inputs, pipeline, unseen_cars) <= 1e-4


def test_graph_matches_pipeline_on_test_rows(
    model_bytes: bytes,
    inputs: list[ManifestInput],
    pipeline: PricePipeline,
    cars: dict[str, pd.DataFrame],
) -> None:
    """Graph and LightGBM pipeline agree within 1e-4 on every synthetic test row."""
    assert parity(model_bytes, inputs, pipeline, cars["test"]) <= 1e-4


def test_unseen_categories_get_a_plausible_price(
    model_bytes: bytes,
    inputs: list[ManifestInput],
    cars: dict[str, pd.DataFrame],
    unseen_cars: pd.DataFrame,
) -> None:
    """Unknown brand/model/colour give a finite price inside the training price range."""
    price = onnx_scoring.run_graph(model_bytes, onnx_scoring.frame_feeds(unseen_cars, inputs))
    train_price = cars["train"]["price"]
    assert np.isfinite(price).all()
    assert (price >= train_price.min() / 2).all()
    assert (price <= train_price.max() * 2).all()


def _vary(frame: pd.DataFrame, field: str, values: list[float]) -> pd.DataFrame:
    """Each car of `frame` repeated once per value of `field` (car-major order)."""
    repeated = frame.loc[frame.index.repeat(len(values))].reset_index(drop=True)
    repeated[field] = np.tile(values, len(frame))
    return repeated


def test_price_never_rises_with_mileage(
    model_bytes: bytes, inputs: list[ManifestInput], cars: dict[str, pd.DataFrame]
) -> None:
    """For fixed cars, more mileage never gives a higher graph price."""
    mileages = [0, 10_000, 50_000, 100_000, 150_000, 250_000, 400_000, 1_000_000]
    frame = _vary(cars["test"].head(40), "mileage", mileages)
    price = onnx_scoring.run_graph(model_bytes, onnx_scoring.frame_feeds(frame, inputs))
    grid = price.reshape(40, len(mileages))
    steps = np.diff(grid, axis=1)
    # Per car, relative to its own price: only float rounding may show as a rise.
    assert (steps <= 1e-6 * grid[:, :-1]).all()
    assert (steps < 0).any()


def test_price_never_falls_with_production_year(
    model_bytes: bytes, inputs: list[ManifestInput], cars: dict[str, pd.DataFrame]
) -> None:
    """For fixed cars, a later production year never gives a lower graph price."""
    years = list(range(1995, 2021, 3))
    frame = _vary(cars["test"].head(40), "production_year", years)
    price = onnx_scoring.run_graph(model_bytes, onnx_scoring.frame_feeds(frame, inputs))
    grid = price.reshape(40, len(years))
    steps = np.diff(grid, axis=1)
    assert (steps >= -1e-6 * grid[:, :-1]).all()
    assert (steps > 0).any()


def test_bundle_manifest_has_the_serving_keys(
    tmp_path: Path, pipeline: PricePipeline, cars: dict[str, pd.DataFrame]
) -> None:
    """The manifest on disk decodes to what export returned, and its sha256 is model.onnx's."""
    manifest = export_bundle(
        pipeline, cars["test"], tmp_path / "model", training_data_hash="t", model_name="car-price"
    )
    on_disk = decode_manifest((tmp_path / "model" / MANIFEST_FILE).read_bytes())
    model = (tmp_path / "model" / MODEL_FILE).read_bytes()
    assert on_disk == manifest
    assert manifest.sha256 == hashlib.sha256(model).hexdigest()
    assert manifest.schema_version == SCHEMA_VERSION
    assert manifest.model_name == "car-price"
    assert manifest.output == PRICE_OUTPUT
    assert manifest.inputs == grouped_inputs()
    assert set(manifest.categories or {}) == set(CATEGORICAL_FIELDS)
    assert manifest.brand_models == pipeline.vocabulary.brand_models_json()
    assert set(manifest.brand_models or {}) == set((manifest.categories or {})["brand"])
    assert manifest.parity_max_rel_diff <= 1e-4
    assert manifest.parity_rows == len(cars["test"])
    assert 0 < manifest.metrics["mape"] < 1


def test_failed_parity_writes_nothing_and_keeps_the_old_bundle(
    tmp_path: Path, pipeline: PricePipeline, cars: dict[str, pd.DataFrame]
) -> None:
    """Export above the parity tolerance raises and leaves the previous bundle untouched."""
    out = tmp_path / "model"
    export_bundle(pipeline, cars["test"], out, training_data_hash="t", model_name="car-price")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(PipelineError, match="parity"):
        export_bundle(
            pipeline,
            cars["test"],
            out,
            training_data_hash="t",
            model_name="car-price",
            parity_tolerance=1e-15,
        )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def _numbers_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every numeric field NaN, each in a different third of the rows."""
    rows = frame.reset_index(drop=True).copy()
    numeric = [name for name in FIELD_NAMES if name not in CATEGORICAL_FIELDS]
    for index, name in enumerate(numeric):
        rows[name] = rows[name].astype("float64")
        rows.loc[rows.index % 3 == index % 3, name] = np.nan
    return rows


def test_a_missing_number_goes_where_lightgbm_sends_it(
    model_bytes: bytes,
    inputs: list[ManifestInput],
    pipeline: PricePipeline,
    cars: dict[str, pd.DataFrame],
) -> None:
    """NaN in any numeric field prices as LightGBM does (as 0 where it never saw one missing).

    The graph has no NaN → 0 node: each split sends NaN where it sends 0. Without that
    routing (every split's missing track cleared) the same rows part from the pipeline.
    """
    rows = _numbers_missing(cars["test"].head(300))
    assert parity(model_bytes, inputs, pipeline, rows) <= 1e-5
    graph = onnx.load_from_string(model_bytes)
    forest = next(node for node in graph.graph.node if node.op_type == "TreeEnsemble")
    for attribute in forest.attribute:
        if attribute.name == "nodes_missing_value_tracks_true":
            attribute.ints[:] = [0] * len(attribute.ints)
    assert parity(graph.SerializeToString(), inputs, pipeline, rows) > 1e-3


def test_another_fields_string_is_that_fields_unknown_code(
    model_bytes: bytes,
    inputs: list[ManifestInput],
    pipeline: PricePipeline,
    cars: dict[str, pd.DataFrame],
) -> None:
    """One encoder serves every categorical column: a value of another field is unknown here."""
    rows = cars["test"].head(200).reset_index(drop=True).copy()
    fields = list(CATEGORICAL_FIELDS)
    for field, other in zip(fields, [*fields[1:], fields[0]], strict=True):
        rows[field] = cars["test"][other].head(200).to_numpy()
    assert parity(model_bytes, inputs, pipeline, rows) <= 1e-5
