"""MLflow tracking and the Model Registry: SQLite + local artifacts under data/ by default.

`MLFLOW_TRACKING_URI`, when set, points every command at a real tracking server instead.
Nothing is configured at import time; each job calls `configure` first.
"""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from training.config import RegistryParams
from training.errors import PipelineError

BUNDLE_ARTIFACT = "bundle"
ONNX_ARTIFACT = "model"


def configure(params: RegistryParams) -> str:
    """Point MLflow at the tracking store and make sure the experiment exists.

    Returns:
        The tracking URI in use.
    """
    # No network from the pipeline: MLflow's usage telemetry stays off.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI") or params.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if mlflow.get_experiment_by_name(params.experiment) is None:
        artifacts = Path(params.artifact_dir).resolve()
        artifacts.mkdir(parents=True, exist_ok=True)
        mlflow.create_experiment(params.experiment, artifact_location=artifacts.as_uri())
    mlflow.set_experiment(params.experiment)
    return uri


@contextlib.contextmanager
def run(
    params: RegistryParams,
    *,
    run_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
) -> Iterator[Any]:
    """Start (or resume, given `run_id`) an MLflow run; failures mark it FAILED.

    Raises:
        PipelineError: `run_id` is not a run of this tracking store.
    """
    import mlflow

    configure(params)
    if run_id is not None:
        require_run(run_id)
    with mlflow.start_run(run_id=run_id, run_name=run_name, nested=nested) as active:
        yield active


def require_run(run_id: str) -> Any:
    """The run `run_id` of the configured store.

    Raises:
        PipelineError: No such run (e.g. a fresh MLflow store beside an old `data/train`).
    """
    import mlflow

    try:
        return mlflow.get_run(run_id)
    except mlflow.exceptions.MlflowException as exc:
        raise PipelineError(
            f"MLflow run {run_id} not found in {mlflow.get_tracking_uri()}; "
            "re-run `car-train train`"
        ) from exc


def client(params: RegistryParams) -> Any:
    """An `MlflowClient` on the configured store."""
    from mlflow import MlflowClient

    configure(params)
    return MlflowClient()


def log_bundle(bundle_dir: Path, example: Any) -> str:
    """Log a bundle to the active run: the ONNX flavour (signature + example) and the files.

    The ONNX flavour makes the model loadable with `mlflow.onnx`/pyfunc; the `bundle/`
    artifact keeps the exact bytes and manifest the server needs (`fetch-model` reads it).

    Args:
        bundle_dir: Directory with model.onnx and manifest.json.
        example: A few rows of raw fields (DataFrame), the signature's input example.

    Returns:
        The logged ONNX model's URI (what a registry version points to).
    """
    import mlflow
    import numpy as np
    import onnx
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    from shared_schema.bundle import MODEL_FILE, PRICE_OUTPUT
    from training.io.onnx_graph import graph_inputs

    feeds = graph_inputs(example)
    signature = ModelSignature(
        inputs=Schema([TensorSpec(array.dtype, (-1, 1), name) for name, array in feeds.items()]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 1), PRICE_OUTPUT)]),
    )
    info = mlflow.onnx.log_model(
        onnx.load_model(str(bundle_dir / MODEL_FILE)),
        name=ONNX_ARTIFACT,
        signature=signature,
        input_example=feeds,
        # The graph needs only onnxruntime: skip MLflow's environment inference (uv export).
        pip_requirements=["onnx", "onnxruntime"],
    )
    mlflow.log_artifacts(str(bundle_dir), artifact_path=BUNDLE_ARTIFACT)
    return str(info.model_uri)
