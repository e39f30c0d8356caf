"""Price intervals: split-conformal bounds on log price, binned by the predicted price.

The point model predicts log(price). On rows it did not train on (the validation split), the
residuals `log(actual) - log(predicted)` are grouped into bins of the predicted log price
(equal-count bins; "Mondrian" conformal prediction), and each bin keeps the conformal
quantiles of its residuals at `(1 - nominal) / 2` and `(1 + nominal) / 2`. At prediction time
the bin of the predicted log price picks the two offsets:

    p_low  = exp(log_pred + lower[bin]),   p_high = exp(log_pred + upper[bin])

Binning matters because the error is not the same for a 200k and a 5M rouble car: one global
width would over-cover one end of the market and under-cover the other. The offsets are clipped
so that `lower <= 0 <= upper`, which makes `p_low <= price <= p_high` hold by construction; the
graph enforces it once more with Min/Max. Everything here is a pure function of arrays; the ONNX
twin lives in `training.io.onnx_graph` and the export checks their parity.
"""

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

#: Fewest calibration rows a bin may hold: its 10 % tail is then estimated from ≥ 5 rows.
MIN_BIN_ROWS = 50


@dataclass(frozen=True)
class IntervalTable:
    """Per-bin log-price offsets of a calibrated interval.

    Attributes:
        nominal: Intended coverage of the interval, e.g. 0.8 for p10–p90.
        edges: Inner bin edges on the predicted log price, increasing (bins = len(edges) + 1);
            a prediction equal to an edge falls in the lower bin.
        lower: Offset added to the log price for the lower bound, per bin (≤ 0).
        upper: Offset added to the log price for the upper bound, per bin (≥ 0).
        calibration_rows: Rows the table was fitted on.
    """

    nominal: float
    edges: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    calibration_rows: int

    def bins(self, log_pred: Array) -> npt.NDArray[np.int64]:
        """The bin of each predicted log price: how many inner edges it exceeds."""
        edges = np.asarray(self.edges, dtype=np.float64)
        return np.sum(log_pred.reshape(-1, 1) > edges.reshape(1, -1), axis=1).astype(np.int64)

    def bounds(self, log_pred: Array, level: float = 0.0) -> tuple[Array, Array]:
        """Lower and upper prices (RUB) for predicted log prices, at a market level.

        Args:
            log_pred: Log prices relative to the market (`PricePipeline.predict_relative_log`):
                they pick the bin, so a level refresh moves no car to another bin.
            level: The market's log level, added to both bounds (they scale with it).
        """
        index = self.bins(log_pred)
        lower = np.asarray(self.lower, dtype=np.float64)[index]
        upper = np.asarray(self.upper, dtype=np.float64)[index]
        return np.exp(log_pred + level + lower), np.exp(log_pred + level + upper)


def conformal_quantile(scores: Array, level: float, *, upper: bool) -> float:
    """The split-conformal quantile of `scores` at `level`, finite-sample corrected.

    For the upper tail the ⌈(n + 1)·level⌉-th smallest score, for the lower tail the
    ⌊(n + 1)·level⌋-th: with n exchangeable calibration scores each tail then misses at most
    its share of new rows, so the interval covers at least `nominal` on average.
    """
    ordered = np.sort(scores)
    n = len(ordered)
    rank = min(n, math.ceil((n + 1) * level)) if upper else max(1, math.floor((n + 1) * level))
    return float(ordered[rank - 1])


def fit_intervals(
    log_pred: Array,
    price: Array,
    *,
    nominal: float = 0.8,
    bins: int = 10,
    level: Array | float = 0.0,
) -> IntervalTable:
    """Calibrate the interval on rows the point model did not train on.

    Args:
        log_pred: The point model's log price for each calibration row, relative to the
            market (the bins are on it).
        price: The actual prices (RUB).
        level: Each row's market log level (`training.core.market_index`), added to
            `log_pred` for the residuals.
        nominal: Intended coverage, in (0, 1).
        bins: Number of equal-count bins of the predicted log price.

    Returns:
        The fitted table.

    Raises:
        ValueError: Too few rows for the bins, non-positive prices, or a bad nominal.
    """
    if not 0.0 < nominal < 1.0:
        raise ValueError(f"nominal coverage must be in (0, 1), got {nominal}")
    if len(log_pred) != len(price):
        raise ValueError(f"{len(log_pred)} predictions for {len(price)} prices")
    if not np.all(price > 0):
        raise ValueError("prices must be positive")
    if len(price) < MIN_BIN_ROWS:
        raise ValueError(f"{len(price)} calibration rows; the interval needs {MIN_BIN_ROWS}")
    residual = np.log(price) - log_pred - level
    # Edges are float32 values: the graph compares its float32 log price with them.
    quantiles = np.quantile(log_pred, np.linspace(0, 1, bins + 1)[1:-1])
    edges = [float(e) for e in np.unique(quantiles.astype(np.float32))]
    table = _merge_small_bins(IntervalTable(nominal, tuple(edges), (), (), len(price)), log_pred)
    edges = list(table.edges)
    index = table.bins(log_pred)
    low_level, high_level = (1 - nominal) / 2, (1 + nominal) / 2
    lower, upper = [], []
    for b in range(len(edges) + 1):
        scores = residual[index == b]
        lower.append(min(0.0, conformal_quantile(scores, low_level, upper=False)))
        upper.append(max(0.0, conformal_quantile(scores, high_level, upper=True)))
    return IntervalTable(nominal, table.edges, tuple(lower), tuple(upper), len(price))


def _merge_small_bins(table: IntervalTable, log_pred: Array) -> IntervalTable:
    """Drop edges until every bin holds `MIN_BIN_ROWS` rows (ties and small data)."""
    edges = list(table.edges)
    while edges:
        counts = np.bincount(
            IntervalTable(table.nominal, tuple(edges), (), (), 0).bins(log_pred),
            minlength=len(edges) + 1,
        )
        small = int(np.argmin(counts))
        if counts[small] >= MIN_BIN_ROWS:
            break
        # Merge the small bin into its smaller neighbour by dropping the edge between them.
        if small == 0:
            drop = 0
        elif small == len(edges) or counts[small - 1] <= counts[small + 1]:
            drop = small - 1
        else:
            drop = small
        del edges[drop]
    return IntervalTable(table.nominal, tuple(edges), (), (), table.calibration_rows)


def coverage(price: Array, low: Array, high: Array) -> float:
    """Share of prices inside [low, high]."""
    return float(np.mean((price >= low) & (price <= high)))


def mean_relative_width(point: Array, low: Array, high: Array) -> float:
    """Mean of (high - low) / point: how wide the interval is relative to the price."""
    return float(np.mean((high - low) / point))
