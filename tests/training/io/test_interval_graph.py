"""The price interval in the ONNX graph: its outputs, their order, parity and the manifest."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared_schema.bundle import LOWER_OUTPUT, PRICE_OUTPUT, UPPER_OUTPUT
from training.core.intervals import IntervalTable, coverage, fit_intervals
from training.core.model import PricePipeline
from training.io import onnx_graph, onnx_scoring
from training.io.exporter import export_bundle, parity


@pytest.fixture(scope="module")
def with_interval(pipeline: PricePipeline, cars: dict[str, pd.DataFrame]) -> PricePipeline:
    """The session pipeline with an 80 % interval calibrated on the validation rows."""
    val = cars["val"]
    table = fit_intervals(pipeline.predict_log(val), val["price"].to_numpy(float), bins=4)
    return replace(pipeline, interval=table)


def test_graph_outputs_the_bounds_in_order_and_in_parity(
    with_interval: PricePipeline, cars: dict[str, pd.DataFrame], unseen_cars: pd.DataFrame
) -> None:
    """Lower ≤ price ≤ upper on every row, each output equal to the pipeline's (1e-5)."""
    frame = pd.concat([cars["test"], unseen_cars], ignore_index=True)
    graph = onnx_graph.build_graph(with_interval)
    model, inputs = graph.SerializeToString(), onnx_graph.input_spec(graph)
    price, low, high = onnx_scoring.run_outputs(
        model, onnx_scoring.frame_feeds(frame, inputs), [PRICE_OUTPUT, LOWER_OUTPUT, UPPER_OUTPUT]
    )
    assert np.all(low <= price)
    assert np.all(price <= high)
    assert np.all(low < high)
    assert parity(model, inputs, with_interval, frame) < 1e-5
    want_low, want_high = with_interval.predict_bounds(frame)
    np.testing.assert_allclose(low, want_low, rtol=1e-5)
    np.testing.assert_allclose(high, want_high, rtol=1e-5)


def test_parity_sees_a_wrong_interval(
    with_interval: PricePipeline, cars: dict[str, pd.DataFrame]
) -> None:
    """A graph whose offsets differ from the pipeline's fails the parity measure."""
    table = with_interval.interval
    assert table is not None
    shifted = replace(table, upper=tuple(u + 0.01 for u in table.upper))
    graph = onnx_graph.build_graph(replace(with_interval, interval=shifted))
    inputs = onnx_graph.input_spec(graph)
    assert parity(graph.SerializeToString(), inputs, with_interval, cars["test"]) > 5e-3


def test_one_bin_interval_exports(pipeline: PricePipeline, cars: dict[str, pd.DataFrame]) -> None:
    """A table without edges (one bin) still builds a valid graph with ordered bounds."""
    table = IntervalTable(0.8, (), (-0.2,), (0.25,), 100)
    graph = onnx_graph.build_graph(replace(pipeline, interval=table))
    feeds = onnx_scoring.frame_feeds(cars["test"], onnx_graph.input_spec(graph))
    price, low, high = onnx_scoring.run_outputs(
        graph.SerializeToString(), feeds, [PRICE_OUTPUT, LOWER_OUTPUT, UPPER_OUTPUT]
    )
    np.testing.assert_allclose(low, price * np.exp(-0.2), rtol=1e-5)
    np.testing.assert_allclose(high, price * np.exp(0.25), rtol=1e-5)


def test_manifest_records_nominal_and_measured_coverage(
    tmp_path: Path, with_interval: PricePipeline, cars: dict[str, pd.DataFrame]
) -> None:
    """The exported manifest names the bounds' outputs and the coverage measured on its rows."""
    manifest = export_bundle(
        with_interval, cars["test"], tmp_path, training_data_hash="t", model_name="car-price"
    )
    assert manifest.interval is not None
    assert manifest.interval.nominal == 0.8
    assert manifest.outputs() == (PRICE_OUTPUT, LOWER_OUTPUT, UPPER_OUTPUT)
    low, high = with_interval.predict_bounds(cars["test"])
    measured = coverage(cars["test"]["price"].to_numpy(float), low, high)
    assert manifest.interval.coverage == pytest.approx(measured, abs=0.01)
    assert 0.6 <= manifest.interval.coverage <= 0.95


def test_interval_edges_that_do_not_ascend_are_refused() -> None:
    """A table whose edges are out of order, or offsets not one per bin, is refused by name."""
    from training.io.interval_tree import interval_nodes

    with pytest.raises(ValueError, match=r"edges must ascend strictly: \[0.2, 0.1\]"):
        interval_nodes(IntervalTable(0.8, (0.2, 0.1), (-0.2,) * 3, (0.2,) * 3, 100), "r", "p")
    with pytest.raises(ValueError, match="2 upper offsets for 3 bins"):
        interval_nodes(IntervalTable(0.8, (0.1, 0.2), (-0.2,) * 3, (0.2,) * 2, 100), "r", "p")


def test_each_bin_reads_its_own_offsets(
    with_interval: PricePipeline, cars: dict[str, pd.DataFrame]
) -> None:
    """Rows in every bin, and on each edge itself, get that bin's bounds (as the pipeline)."""
    table = with_interval.interval
    assert table is not None
    assert len(table.edges) >= 2
    graph = onnx_graph.build_graph(with_interval)
    model, inputs = graph.SerializeToString(), onnx_graph.input_spec(graph)
    frame = cars["test"].reset_index(drop=True)
    relative = with_interval.predict_relative_log(frame)
    bins = np.searchsorted(np.asarray(table.edges), relative, side="left")
    assert set(bins.tolist()) == set(range(len(table.edges) + 1))
    assert parity(model, inputs, with_interval, frame) < 1e-5
