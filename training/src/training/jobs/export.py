"""`car-train export`: the trained pipeline → one ONNX graph + manifest in `data/model/`.

`export_bundle` is the reusable core (tests and benchmarks build real bundles with it, or with
`bundle_from_frame` straight from a synthetic DataFrame).
"""

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shared_schema import SCHEMA_VERSION
from training.config import Params
from training.core.encoding import fit_vocabulary
from training.core.metrics import regression_metrics
from training.core.model import PricePipeline, train_booster
from training.errors import PipelineError
from training.io import bundle, onnx_graph, pipeline_files, registry, tracking
from training.jobs import split

log = logging.getLogger(__name__)

MODEL_NAME = "car-price"


def parity(model_bytes: bytes, pipeline: PricePipeline, frame: pd.DataFrame) -> float:
    """Largest relative difference between the graph's and the pipeline's prices on `frame`."""
    graph_price = onnx_graph.run_graph(model_bytes, onnx_graph.graph_inputs(frame))
    expected = pipeline.predict_price(frame)
    return float(np.max(np.abs(graph_price.astype(np.float64) - expected) / expected))


def export_bundle(
    pipeline: PricePipeline,
    check_frame: pd.DataFrame,
    out_dir: Path,
    *,
    training_data_hash: str,
    model_version: str | None = None,
    parity_tolerance: float = 1e-4,
    opset: int = 17,
    extra_metrics: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Build the graph, check parity on every row of `check_frame`, write the bundle.

    Args:
        pipeline: The trained pipeline.
        check_frame: Rows (raw fields + `price`) for parity and the manifest's metrics.
        out_dir: The bundle directory; replaced atomically, untouched on failure.
        training_data_hash: Recorded in the manifest.
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
    graph_price = onnx_graph.run_graph(model_bytes, onnx_graph.graph_inputs(check_frame))
    metrics = regression_metrics(check_frame["price"].to_numpy(np.float64), graph_price)
    manifest: dict[str, Any] = {
        "sha256": sha256,
        "schema_version": SCHEMA_VERSION,
        "model_name": MODEL_NAME,
        "model_version": model_version or f"dev-{sha256[:12]}",
        "created_at": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "inputs": onnx_graph.input_types(),
        "output": onnx_graph.OUTPUT_NAME,
        "metrics": {**metrics, **(extra_metrics or {})},
        "training_data_hash": training_data_hash,
        "parity_max_rel_diff": max_rel_diff,
        "parity_rows": len(check_frame),
        "categories": pipeline.vocabulary.to_json(),
    }
    bundle.write(out_dir, model_bytes, manifest)
    return manifest


def bundle_from_frame(
    frame: pd.DataFrame,
    out_dir: Path,
    *,
    num_boost_round: int = 60,
    seed: int = 0,
    model_version: str | None = None,
) -> dict[str, Any]:
    """Train a small real model on `frame` (raw fields + `price`) and write its bundle.

    For tests and benchmarks that need a genuine bundle without the pipeline: 80 % of the
    rows train, 20 % validate and check parity.

    Returns:
        The manifest.
    """
    rng = np.random.default_rng(seed)
    is_val = rng.random(len(frame)) < 0.2
    train, val = frame.loc[~is_val], frame.loc[is_val]
    vocabulary = fit_vocabulary(train, 1)
    pipeline, _ = train_booster(
        train,
        val,
        vocabulary,
        {
            # Plain L2 converges in few rounds; huber with a small alpha needs hundreds.
            "objective": "regression",
            "learning_rate": 0.1,
            "num_leaves": 15,
            "min_child_samples": 5,
            "num_threads": 1,
            "seed": seed,
        },
        num_boost_round=num_boost_round,
        early_stopping_rounds=num_boost_round,
    )
    return export_bundle(
        pipeline,
        val,
        out_dir,
        training_data_hash=hashlib.sha256(
            pd.util.hash_pandas_object(train, index=False).to_numpy().tobytes()
        ).hexdigest(),
        model_version=model_version,
    )


def run(params: Params) -> dict[str, Any]:
    """Export the trained pipeline to `export.model_dir` and log it to the training run.

    Returns:
        The manifest.
    """
    import mlflow

    pipeline, info = pipeline_files.load(Path(params.train.model_dir))
    test = split.read_split(params, "test")
    out_dir = Path(params.export.model_dir)
    manifest = export_bundle(
        pipeline,
        test,
        out_dir,
        training_data_hash=info["data"]["splits"]["train"]["sha256"],
        parity_tolerance=params.export.parity_tolerance,
        opset=params.export.opset,
    )
    with tracking.run(params.registry, run_id=info["run_id"]):
        mlflow.log_metric("parity_max_rel_diff", manifest["parity_max_rel_diff"])
        mlflow.set_tag("model_sha256", manifest["sha256"])
        model_uri = tracking.log_bundle(out_dir, test.head(3))
        mlflow.set_tag(registry.MODEL_URI_TAG, model_uri)
    log.info(
        "exported %s (sha256 %s…): test MAPE %.4f, parity max rel diff %.2e",
        out_dir,
        manifest["sha256"][:12],
        manifest["metrics"]["mape"],
        manifest["parity_max_rel_diff"],
    )
    return manifest
