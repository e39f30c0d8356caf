"""Scoring raw rows with a bundle's graph: the feeds from a DataFrame, one onnxruntime run.

Kept apart from `onnx_graph` (which builds the graph from a LightGBM pipeline) so that steps
that only score a bundle (`promote`) do not depend on the exporter.
"""

from collections.abc import Sequence

import numpy as np
import pandas as pd

from shared_schema.bundle import PRICE_OUTPUT, Manifest, ManifestInput
from shared_schema.feeds import build_feeds


def run_outputs(
    model_bytes: bytes, frame_inputs: dict[str, np.ndarray], names: Sequence[str]
) -> list[np.ndarray]:
    """Score raw inputs with onnxruntime (one thread, deterministic): each output [N] float32."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    return [
        np.asarray(out, dtype=np.float32).reshape(-1)
        for out in session.run(list(names), frame_inputs)
    ]


def run_graph(model_bytes: bytes, frame_inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The graph's price output [N] float32 (see `run_outputs`)."""
    (price,) = run_outputs(model_bytes, frame_inputs, [PRICE_OUTPUT])
    return price


def price_at(
    model_bytes: bytes, manifest: Manifest, frame: pd.DataFrame, period: str | None = None
) -> np.ndarray:
    """A bundle's prices [N] float64 for `frame`, at the market of `period`.

    The graph serves one level (`Manifest.market.served_level`) as one constant added to its
    log price, so its prices at another period of its index are its served prices times
    exp(level(period) - served level), exactly. None, or a bundle without an index, gives
    the served prices.

    Raises:
        KeyError: The bundle's index has no level for `period` (named).
    """
    price = run_graph(model_bytes, frame_feeds(frame, manifest.inputs)).astype(np.float64)
    market = manifest.market
    if period is None or market is None:
        return price
    scaled: np.ndarray = price * np.exp(market.level_of(period) - market.served_level)
    return scaled


def prices_at_periods(
    model_bytes: bytes, manifest: Manifest, frame: pd.DataFrame, periods: pd.Series
) -> np.ndarray:
    """A bundle's prices [N] float64 for `frame`, each row at the market of its own period.

    `periods` (aligned with `frame`'s rows) names each row's period; a bundle without an
    index gives its served prices.

    Raises:
        KeyError: The bundle's index has no level for one of `periods` (named).
    """
    price = run_graph(model_bytes, frame_feeds(frame, manifest.inputs)).astype(np.float64)
    market = manifest.market
    if market is None:
        return price
    levels = {str(p): market.level_of(str(p)) for p in pd.unique(periods)}
    shift = np.asarray([levels[str(p)] for p in periods], dtype=np.float64) - market.served_level
    scaled: np.ndarray = price * np.exp(shift)
    return scaled


def frame_feeds(frame: pd.DataFrame, inputs: Sequence[ManifestInput]) -> dict[str, np.ndarray]:
    """A DataFrame's raw columns as the graph's feeds, by the one rule (`shared_schema.feeds`).

    Args:
        frame: Rows with (at least) a column per graph input.
        inputs: The graph's own inputs: `Manifest.inputs`, or at export the built graph's
            (`onnx_graph.input_spec`).

    Raises:
        MissingInputError: `frame` has no column for one of `inputs` (named).
    """
    columns = {
        name: frame[name].astype(str).to_numpy(dtype=object)
        if item.type == "string"
        else pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
        for item in inputs
        for name in item.columns
        if name in frame.columns
    }
    return build_feeds(inputs, columns)
