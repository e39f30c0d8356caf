"""The ONNX exporter: a trained pipeline → one graph + manifest, parity-checked on real rows.

`car-train export` (the pipeline's candidate) and `car-train retrain` (a challenger trained on
new market data) both build their bundle here, and the model tests build real bundles with it.
"""

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
from onnx import helper

from shared_schema import SCHEMA_VERSION
from shared_schema.bundle import (
    LOWER_OUTPUT,
    PRICE_OUTPUT,
    UPPER_OUTPUT,
    IntervalInfo,
    Manifest,
    ManifestInput,
)
from training.core.encoding import feature_matrix
from training.core.intervals import coverage, mean_relative_width
from training.core.metrics import regression_metrics
from training.core.model import PricePipeline
from training.errors import PipelineError
from training.io import bundle, onnx_graph, onnx_scoring, tree_ensemble

#: A predicted log price this close to an interval bin edge may fall on either side of it in
#: float32 (the graph) and float64 (the pipeline); such rows are left out of the bounds' parity.
EDGE_MARGIN = 1e-5


def parity(
    model_bytes: bytes,
    inputs: Sequence[ManifestInput],
    pipeline: PricePipeline,
    frame: pd.DataFrame,
) -> float:
    """Largest relative difference graph vs pipeline on `frame`, over every graph output.

    The graph is fed its `inputs` (`onnx_graph.input_spec`). The price is compared on every
    row; the interval's bounds (when the pipeline has one) on every row whose log price is not
    within `EDGE_MARGIN` of a bin edge.
    """
    return float(np.max(_row_differences(model_bytes, inputs, pipeline, frame)))


def _row_differences(
    model_bytes: bytes,
    inputs: Sequence[ManifestInput],
    pipeline: PricePipeline,
    frame: pd.DataFrame,
) -> np.ndarray:
    """Each row's largest relative difference graph vs pipeline (see `parity`)."""
    feeds = onnx_scoring.frame_feeds(frame, inputs)
    if pipeline.interval is None:
        outputs = onnx_scoring.run_outputs(model_bytes, feeds, [PRICE_OUTPUT])
        expected = [pipeline.predict_price(frame)]
        rows = np.ones(len(frame), dtype=bool)
    else:
        outputs = onnx_scoring.run_outputs(
            model_bytes, feeds, [PRICE_OUTPUT, LOWER_OUTPUT, UPPER_OUTPUT]
        )
        relative = pipeline.predict_relative_log(frame)
        level = pipeline.served_level
        expected = [np.exp(relative + level), *pipeline.interval.bounds(relative, level)]
        edges = np.asarray(pipeline.interval.edges, dtype=np.float64).reshape(1, -1)
        rows = ~np.any(np.abs(relative.reshape(-1, 1) - edges) < EDGE_MARGIN, axis=1)
    diffs = [np.abs(outputs[0].astype(np.float64) - expected[0]) / expected[0]]
    diffs += [
        np.where(rows, np.abs(got.astype(np.float64) - want) / want, 0.0)
        for got, want in zip(outputs[1:], expected[1:], strict=True)
    ]
    return np.max(np.stack(diffs), axis=0)


def parity_culprit(
    model_bytes: bytes,
    inputs: Sequence[ManifestInput],
    pipeline: PricePipeline,
    frame: pd.DataFrame,
) -> str:
    """The row that differs most, and the first tree whose leaf is not the booster's there."""
    import onnxruntime as ort

    row = int(np.argmax(_row_differences(model_bytes, inputs, pipeline, frame)))
    one = frame.iloc[[row]]
    where = f"row {row} (index {one.index[0]})"
    model = onnx.load_from_string(model_bytes)
    forest = next((n for n in model.graph.node if n.op_type == "TreeEnsemble"), None)
    if forest is None:
        return f"{where}; no TreeEnsemble to compare tree by tree"
    matrix_name = forest.input[0]
    # The forest's input has its thresholds' type (float32 or float64: TreeEnsemble's rule).
    matrix_type = next(a.t.data_type for a in forest.attribute if a.name == "nodes_splits")
    model.graph.output.append(helper.make_tensor_value_info(matrix_name, matrix_type, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (matrix,) = session.run([matrix_name], onnx_scoring.frame_feeds(one, inputs))
    graph_leaves = tree_ensemble.leaf_values(forest, np.asarray(matrix)[0])
    encoded = feature_matrix(one, pipeline.vocabulary).to_numpy(np.float64)
    leaves = pipeline.booster.predict(encoded, pred_leaf=True)[0]
    for tree, (leaf, got) in enumerate(zip(leaves, graph_leaves, strict=False)):
        want = pipeline.booster.get_leaf_output(tree, int(leaf))
        # onnxmltools stores leaf values as float32: 1e-6 is rounding, more is a wrong leaf.
        if not np.isclose(got, want, rtol=1e-6, atol=1e-9):
            return f"{where}, tree {tree}: graph leaf {got:.6g}, booster leaf {want:.6g}"
    return f"{where}: every tree's leaf is the booster's; the difference is outside the forest"


def export_bundle(
    pipeline: PricePipeline,
    check_frame: pd.DataFrame,
    out_dir: Path,
    *,
    training_data_hash: str,
    model_name: str,
    model_version: str | None = None,
    parity_tolerance: float = 1e-4,
    opset: int = 17,
    extra_metrics: dict[str, float] | None = None,
) -> Manifest:
    """Build the graph, check parity on every row of `check_frame`, write the bundle.

    Args:
        pipeline: The trained pipeline.
        check_frame: Rows (raw fields + `price`) for parity and the manifest's metrics.
        out_dir: The bundle directory; replaced atomically, untouched on failure.
        training_data_hash: Recorded in the manifest.
        model_name: The registered model's name (`registry.model_name`), in the manifest.
        model_version: Recorded in the manifest; default `dev-<sha256 prefix>`.
        parity_tolerance: Largest allowed relative difference graph vs pipeline.
        opset: Default-domain opset of the graph.
        extra_metrics: More metrics for the manifest.

    Returns:
        The manifest.

    Raises:
        PipelineError: Parity fails (nothing is written then).
        MissingInputError: `check_frame` lacks a column the graph takes as input.
    """
    graph = onnx_graph.build_graph(pipeline, opset=opset)
    # No manifest yet: the graph's own inputs are read from it, fed by the one feed rule and
    # recorded as the manifest's `inputs`.
    inputs = onnx_graph.input_spec(graph)
    model_bytes = graph.SerializeToString()
    max_rel_diff = parity(model_bytes, inputs, pipeline, check_frame)
    if not max_rel_diff <= parity_tolerance:
        culprit = parity_culprit(model_bytes, inputs, pipeline, check_frame)
        raise PipelineError(
            f"ONNX parity failed: max relative difference {max_rel_diff:.3g} on "
            f"{len(check_frame)} rows exceeds export.parity_tolerance {parity_tolerance:g}; "
            f"worst {culprit}"
        )
    sha256 = hashlib.sha256(model_bytes).hexdigest()
    price = check_frame["price"].to_numpy(np.float64)
    feeds = onnx_scoring.frame_feeds(check_frame, inputs)
    graph_price = onnx_scoring.run_graph(model_bytes, feeds)
    metrics = regression_metrics(price, graph_price)
    interval = None
    if pipeline.interval is not None:
        _, low, high = onnx_scoring.run_outputs(
            model_bytes, feeds, [PRICE_OUTPUT, LOWER_OUTPUT, UPPER_OUTPUT]
        )
        interval = IntervalInfo(
            nominal=pipeline.interval.nominal,
            calibration_rows=pipeline.interval.calibration_rows,
            coverage=coverage(price, low, high),
            mean_relative_width=mean_relative_width(graph_price, low, high),
        )
    manifest = Manifest(
        sha256=sha256,
        schema_version=SCHEMA_VERSION,
        model_name=model_name,
        model_version=model_version or f"dev-{sha256[:12]}",
        inputs=inputs,
        output=PRICE_OUTPUT,
        metrics={**metrics, **(extra_metrics or {})},
        training_data_hash=training_data_hash,
        parity_max_rel_diff=max_rel_diff,
        parity_rows=len(check_frame),
        categories=pipeline.vocabulary.to_json(),
        interval=interval,
        brand_models=pipeline.vocabulary.brand_models_json() or None,
        market=pipeline.market,
        # No created_at: the bundle is a DVC output, the same bytes for the same model (MLflow
        # records when the run logged it).
    )
    bundle.write(out_dir, model_bytes, manifest)
    return manifest
