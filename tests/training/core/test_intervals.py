"""The price interval's conformal calibration: finite-sample quantiles, bins, coverage."""

import numpy as np
import pytest

from training.core.intervals import MIN_BIN_ROWS, conformal_quantile, coverage, fit_intervals


def _noisy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Log predictions and prices whose log error grows with the predicted price."""
    rng = np.random.default_rng(seed)
    log_pred = rng.uniform(11.0, 16.0, n)
    price = np.exp(log_pred + rng.normal(0.0, 0.05 + 0.05 * (log_pred - 11.0), n))
    return log_pred, price


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
