"""The price interval: conformal calibration, its ONNX outputs, order, coverage and parity."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared_schema.bundle import LOWER_OUTPUT, PRICE_OUTPUT, UPPER_OUTPUT
from training.core.intervals import (
    MIN_BIN_ROWS,
    IntervalTable,
    conformal_quantile,
    coverage,
    fit_intervals,
)
from training.core.model import PricePipeline
from training.io import onnx_graph, onnx_scoring
from training.io.exporter import export_bundle, parity


def _noisy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Log predictions and prices whose log error grows with the predicted price."""
    rng = np.random.default_rng(seed)
    log_pred = rng.uniform(11.0, 16.0, n)
    price = np.exp(log_pred + rng.normal(0.0, 0.05 + 0.05 * (log_pred - 11.0), n))
    return log_pred, price


@pytest.fixture(scope="module")
def with_interval(pipeline: PricePipeline, cars: dict[str, pd.DataFrame]) -> PricePipeline:
    """The session pipeline with an 80 % interval calibrated on the validation rows."""
    val = cars["val"]
    table = fit_intervals(pipeline.predict_log(val), val["price"].to_numpy(float), bins=4)
    return replace(pipeline, interval=table)


def test_conformal_quantile_is_finite_sample_corrected() -> None:
    """With 9 scores the 0.9 upper quantile is the largest (rank ceil(10 * 0.9) = 9)."""
    scores = np.arange(1.0, 10.0)
    assert conformal_quantile(scores, 0.9, upper=True) == 9.0
    assert conformal_quantile(scores, 0.1, upper=False) == 1.0
    assert conformal_quantile(np.arange(1.0, 100.0), 0.5, upper=True) == 50.0


def test_binned_interval_covers_nominal_on_fresh_rows() -> None:
    """Calibrated on one sample, the 80 % interval covers 78–82 % of a fresh one, per bin too."""
    table = fit_intervals(*_noisy(20_000, seed=1), nominal=0.8, bins=10)
    log_pred, price = _noisy(20_000, seed=2)
    low, high = table.bounds(log_pred)
    assert 0.78 <= coverage(price, low, high) <= 0.82
    index = table.bins(log_pred)
    for b in range(len(table.edges) + 1):
        rows = index == b
        assert 0.74 <= coverage(price[rows], low[rows], high[rows]) <= 0.86
    # The error grows with the price: the top bin's interval is wider than the bottom one's.
    assert table.upper[-1] - table.lower[-1] > 2 * (table.upper[0] - table.lower[0])


def test_one_global_width_misses_the_heteroscedastic_ends() -> None:
    """Why bins: one global width over-covers cheap cars and under-covers expensive ones."""
    table = fit_intervals(*_noisy(20_000, seed=1), nominal=0.8, bins=1)
    log_pred, price = _noisy(20_000, seed=2)
    low, high = table.bounds(log_pred)
    cheap, dear = log_pred < 12.0, log_pred > 15.0
    assert coverage(price[cheap], low[cheap], high[cheap]) > 0.95
    assert coverage(price[dear], low[dear], high[dear]) < 0.65


def test_offsets_straddle_zero_and_small_bins_merge() -> None:
    """Lower ≤ 0 ≤ upper in every bin; ties that would leave a bin tiny merge it away."""
    log_pred = np.repeat([12.0, 13.0, 14.0], [400, 10, 400])
    price = np.exp(log_pred + np.random.default_rng(0).normal(0, 0.1, len(log_pred)))
    table = fit_intervals(log_pred, price, bins=10)
    assert all(lo <= 0.0 <= hi for lo, hi in zip(table.lower, table.upper, strict=True))
    counts = np.bincount(table.bins(log_pred))
    assert counts.min() >= MIN_BIN_ROWS


@pytest.mark.parametrize(
    ("rows", "nominal", "message"),
    [(10, 0.8, "calibration rows"), (500, 1.0, "nominal"), (500, 0.0, "nominal")],
)
def test_bad_calibration_is_refused(rows: int, nominal: float, message: str) -> None:
    """Too few rows or a nominal outside (0, 1) raise a ValueError naming it."""
    log_pred, price = _noisy(rows, seed=0)
    with pytest.raises(ValueError, match=message):
        fit_intervals(log_pred, price, nominal=nominal)


def test_graph_outputs_the_bounds_in_order_and_in_parity(
    with_interval: PricePipeline, cars: dict[str, pd.DataFrame], unseen_cars: pd.DataFrame
) -> None:
    """Lower ≤ price ≤ upper on every row, each output equal to the pipeline's (1e-5)."""
    frame = pd.concat([cars["test"], unseen_cars], ignore_index=True)
    model = onnx_graph.build_graph(with_interval).SerializeToString()
    price, low, high = onnx_scoring.run_outputs(
        model, onnx_scoring.graph_inputs(frame), [PRICE_OUTPUT, LOWER_OUTPUT, UPPER_OUTPUT]
    )
    assert np.all(low <= price)
    assert np.all(price <= high)
    assert np.all(low < high)
    assert parity(model, with_interval, frame) < 1e-5
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
    model = onnx_graph.build_graph(replace(with_interval, interval=shifted)).SerializeToString()
    assert parity(model, with_interval, cars["test"]) > 5e-3


def test_one_bin_interval_exports(pipeline: PricePipeline, cars: dict[str, pd.DataFrame]) -> None:
    """A table without edges (one bin) still builds a valid graph with ordered bounds."""
    table = IntervalTable(0.8, (), (-0.2,), (0.25,), 100)
    model = onnx_graph.build_graph(replace(pipeline, interval=table)).SerializeToString()
    price, low, high = onnx_scoring.run_outputs(
        model, onnx_scoring.graph_inputs(cars["test"]), [PRICE_OUTPUT, LOWER_OUTPUT, UPPER_OUTPUT]
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
