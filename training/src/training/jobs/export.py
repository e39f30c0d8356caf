"""`car-train export`: the trained pipeline → one ONNX graph + manifest in `paths.exported_bundle`.

That bundle is this run's candidate; `register`, `promote` and `publish` decide whether it is
served (`paths.serving_bundle` holds the champion). `export_bundle` is the reusable core (the
model tests build real bundles with it).
"""

import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from shared_schema import SCHEMA_VERSION
from shared_schema.bundle import PRICE_OUTPUT, Manifest, manifest_inputs
from training.config import Params
from training.core.metrics import regression_metrics
from training.core.model import PricePipeline
from training.errors import PipelineError
from training.io import bundle, onnx_graph, onnx_scoring, pipeline_files, registry, splits, tracking

log = logging.getLogger(__name__)


def parity(model_bytes: bytes, pipeline: PricePipeline, frame: pd.DataFrame) -> float:
    """Largest relative difference between the graph's and the pipeline's prices on `frame`."""
    graph_price = onnx_scoring.run_graph(model_bytes, onnx_scoring.graph_inputs(frame))
    expected = pipeline.predict_price(frame)
    return float(np.max(np.abs(graph_price.astype(np.float64) - expected) / expected))


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
    """
    model_bytes = onnx_graph.build_graph(pipeline, opset=opset).SerializeToString()
    max_rel_diff = parity(model_bytes, pipeline, check_frame)
    if not max_rel_diff <= parity_tolerance:
        raise PipelineError(
            f"ONNX parity failed: max relative difference {max_rel_diff:.3g} on "
            f"{len(check_frame)} rows exceeds export.parity_tolerance {parity_tolerance:g}"
        )
    sha256 = hashlib.sha256(model_bytes).hexdigest()
    graph_price = onnx_scoring.run_graph(model_bytes, onnx_scoring.graph_inputs(check_frame))
    metrics = regression_metrics(check_frame["price"].to_numpy(np.float64), graph_price)
    manifest = Manifest(
        sha256=sha256,
        schema_version=SCHEMA_VERSION,
        model_name=model_name,
        model_version=model_version or f"dev-{sha256[:12]}",
        inputs=manifest_inputs(),
        output=PRICE_OUTPUT,
        metrics={**metrics, **(extra_metrics or {})},
        training_data_hash=training_data_hash,
        parity_max_rel_diff=max_rel_diff,
        parity_rows=len(check_frame),
        categories=pipeline.vocabulary.to_json(),
        # No created_at: the bundle is a DVC output, the same bytes for the same model (MLflow
        # records when the run logged it).
    )
    bundle.write(out_dir, model_bytes, manifest)
    return manifest


def run(params: Params) -> Manifest:
    """Export the trained pipeline to `paths.exported_bundle` and log it to the training run.

    Returns:
        The manifest.
    """
    import mlflow

    paths = params.paths
    pipeline, trained = pipeline_files.load(paths.trained_pipeline)
    test = splits.read(paths.splits, "test")
    # The run first: a model no run trained is not exported.
    run_id = tracking.find_run(
        params.registry,
        tracking.PIPELINE_TAG,
        pipeline_files.fingerprint(paths.trained_pipeline),
        "car-train train",
    )
    manifest = export_bundle(
        pipeline,
        test,
        paths.exported_bundle,
        training_data_hash=trained.dataset.train.sha256,
        model_name=params.registry.model_name,
        parity_tolerance=params.export.parity_tolerance,
        opset=params.export.opset,
    )
    with tracking.run(params.registry, run_id=run_id):
        mlflow.log_metric("parity_max_rel_diff", manifest.parity_max_rel_diff)
        mlflow.set_tag(tracking.MODEL_SHA_TAG, manifest.sha256)
        registry.log_bundle(paths.exported_bundle, onnx_scoring.graph_inputs(test.head(3)))
    log.info(
        "exported %s (sha256 %s…): test MAPE %.4f, parity max rel diff %.2e",
        paths.exported_bundle,
        manifest.sha256[:12],
        manifest.metrics["mape"],
        manifest.parity_max_rel_diff,
    )
    return manifest
