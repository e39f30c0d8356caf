"""A champion's graph at another market level: the bundle `car-train refresh-level` registers.

Only the graph's `market_level` constant changes (`training.io.onnx_graph.with_market_level`);
the new graph's prices are checked to be the parent's times the level change, and the manifest
is the parent's with the new graph, index and the figures measured on the rows checked.
"""

import hashlib

import msgspec
import numpy as np
import pandas as pd

from shared_schema.bundle import Manifest
from shared_schema.market import MarketIndex
from training.core.intervals import coverage, mean_relative_width
from training.core.metrics import regression_metrics
from training.errors import PipelineError
from training.io import onnx_scoring
from training.io.onnx_graph import with_market_level


def at_level(
    parent_bytes: bytes,
    parent: Manifest,
    level: float,
    index: MarketIndex,
    holdout: pd.DataFrame,
    *,
    tolerance: float,
) -> tuple[bytes, Manifest]:
    """The parent's graph serving `level`, checked and measured on `holdout`, with `index`.

    Raises:
        PipelineError: The parent has no index, or the new graph's prices are not the parent's
            times the level change within `tolerance` (`export.parity_tolerance`).
    """
    if parent.market is None:
        raise PipelineError("the parent bundle has no market index: its level cannot change")
    model_bytes = with_market_level(parent_bytes, level)
    worst = _check_scaled(
        parent_bytes,
        model_bytes,
        float(np.exp(level - parent.market.served_level)),
        onnx_scoring.frame_feeds(holdout, parent.inputs),
        tolerance=tolerance,
    )
    return model_bytes, _manifest(model_bytes, parent, index, holdout, worst)


def _manifest(
    model_bytes: bytes, parent: Manifest, index: MarketIndex, holdout: pd.DataFrame, parity: float
) -> Manifest:
    """The refreshed bundle's manifest: the parent's, with the new graph and index.

    Measured on the holdout, the rows the parity check ran on (as an export measures on its
    check rows): the metrics, the interval's coverage and width, `parity_rows`.
    """
    sha256 = hashlib.sha256(model_bytes).hexdigest()
    feeds = onnx_scoring.frame_feeds(holdout, parent.inputs)
    price = holdout["price"].to_numpy(np.float64)
    graph_price, *bounds = onnx_scoring.run_outputs(model_bytes, feeds, parent.outputs())
    interval = parent.interval
    if interval is not None:
        low, high = bounds
        interval = msgspec.structs.replace(
            interval,
            coverage=coverage(price, low, high),
            mean_relative_width=mean_relative_width(graph_price, low, high),
        )
    return msgspec.structs.replace(
        parent,
        sha256=sha256,
        model_version=f"dev-{sha256[:12]}",
        registry_alias=None,
        metrics=regression_metrics(price, graph_price),
        parity_max_rel_diff=parity,
        parity_rows=len(holdout),
        interval=interval,
        market=index,
    )


def _check_scaled(
    parent_bytes: bytes,
    model_bytes: bytes,
    ratio: float,
    feeds: dict[str, np.ndarray],
    *,
    tolerance: float,
) -> float:
    """The new graph's prices are the parent's times `ratio` (the level change) on `feeds`.

    Returns:
        The largest relative difference found (the manifest's `parity_max_rel_diff`).

    Raises:
        PipelineError: It is beyond `tolerance` (`export.parity_tolerance`).
    """
    before = onnx_scoring.run_graph(parent_bytes, feeds).astype(np.float64) * ratio
    after = onnx_scoring.run_graph(model_bytes, feeds).astype(np.float64)
    worst = float(np.max(np.abs(after - before) / before))
    if worst > tolerance:
        raise PipelineError(
            f"refreshed graph differs from the parent's x{ratio:.4f} by {worst:.3g} "
            f"(export.parity_tolerance {tolerance:g})"
        )
    return worst
