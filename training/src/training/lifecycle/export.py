"""Lifecycle, step 2: a fitted pipeline → one ONNX bundle, parity-checked, logged to its run.

`export` writes the bundle (`training.io.exporter`: the graph, parity on every row of the check
frame, the manifest's metrics on those rows); `log_export` logs it to the model's run, where
`register` finds it by the bundle's sha256. They are apart because `car-train export` opens the
training run only after the bundle passed parity (a failed export leaves the run as it was),
while `car-train retrain` exports inside its own run.
"""

from pathlib import Path

import pandas as pd

from shared_schema.bundle import Manifest
from training.config import Params
from training.core.model import PricePipeline
from training.io import onnx_scoring, registry
from training.io.exporter import export_bundle
from training.io.mlflow_service import MODEL_SHA_TAG, TrackedRun


def export(
    pipeline: PricePipeline,
    check_frame: pd.DataFrame,
    out: Path,
    *,
    training_data_hash: str,
    params: Params,
) -> Manifest:
    """Write the bundle into `out` under params.yaml's `export` settings and model name.

    Args:
        pipeline: The fitted pipeline.
        check_frame: Rows (raw fields + `price`) for parity and the manifest's metrics.
        out: The bundle folder (`paths.exported_bundle` or `paths.retrain_bundle`).
        training_data_hash: The training rows' hash, recorded in the manifest.
        params: The pipeline params (`export`, `registry.model_name`).

    Raises:
        PipelineError: Parity fails (nothing is written then).
    """
    return export_bundle(
        pipeline,
        check_frame,
        out,
        training_data_hash=training_data_hash,
        model_name=params.registry.model_name,
        parity_tolerance=params.export.parity_tolerance,
        opset=params.export.opset,
    )


def log_export(run: TrackedRun, out: Path, manifest: Manifest, check_frame: pd.DataFrame) -> None:
    """Log the bundle in `out` to the model's run: parity, its sha256 tag, the files."""
    run.log_metrics({"parity_max_rel_diff": manifest.parity_max_rel_diff})
    run.set_tags({MODEL_SHA_TAG: manifest.sha256})
    registry.log_bundle(run, out, onnx_scoring.frame_feeds(check_frame.head(3), manifest.inputs))
