"""The MLflow Model Registry: logged bundles, versions, the `challenger` / `champion` aliases.

Every function works on the store of the `MlflowService` it is given (`training.io.mlflow_service`).
"""

import tempfile
from pathlib import Path
from typing import Any, Final

from shared_schema.bundle import MODEL_FILE, PRICE_OUTPUT, Manifest, read_verified
from training.errors import PipelineError
from training.io.mlflow_service import MlflowService, TrackedRun

CHALLENGER: Final = "challenger"
CHAMPION: Final = "champion"
#: Run tag holding the logged ONNX model's URI (what a registry version points to).
MODEL_URI_TAG: Final = "onnx_model_uri"
#: Version tag of a retrained model: the newest row it trained on (`core.retrain.slice_key`),
#: so a later retrain can check that its champion never saw the holdout.
TRAINED_THROUGH_TAG: Final = "retrain_trained_through"
#: Run artifact folders: the exact bundle files, and the ONNX flavour of the model.
BUNDLE_ARTIFACT: Final = "bundle"
ONNX_ARTIFACT: Final = "model"


def log_bundle(run: TrackedRun, bundle_dir: Path, example: dict[str, Any]) -> str:
    """Log a bundle to `run`: the ONNX flavour (signature + example) and the files.

    The ONNX flavour makes the model loadable with `mlflow.onnx`/pyfunc; the `bundle/`
    artifact keeps the exact bytes and manifest the server needs (`fetch-model` reads it).

    Args:
        run: The model's run (`training.io.mlflow_service.TrackedRun`).
        bundle_dir: Directory with model.onnx and manifest.json.
        example: Feeds of a few rows (`onnx_scoring.frame_feeds`), the input example.

    Returns:
        The logged ONNX model's URI, also set as the run's `MODEL_URI_TAG`.
    """
    import mlflow
    import numpy as np
    import onnx
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    signature = ModelSignature(
        inputs=Schema(
            [TensorSpec(array.dtype, (-1, array.shape[1]), name) for name, array in example.items()]
        ),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 1), PRICE_OUTPUT)]),
    )
    with run.active():
        info = mlflow.onnx.log_model(
            onnx.load_model(str(bundle_dir / MODEL_FILE)),
            name=ONNX_ARTIFACT,
            signature=signature,
            input_example=example,
            # The graph needs only onnxruntime: skip MLflow's environment inference (uv export).
            pip_requirements=["onnx", "onnxruntime"],
        )
    run.log_artifacts(bundle_dir, BUNDLE_ARTIFACT)
    run.set_tags({MODEL_URI_TAG: info.model_uri})
    return str(info.model_uri)


def register(service: MlflowService, model_name: str, run_id: str, tags: dict[str, str]) -> str:
    """Register the ONNX model of `run_id` as a new version of `model_name`.

    Returns:
        The new version number (a string, as MLflow returns it).

    Raises:
        PipelineError: The run has no exported model.
    """
    import mlflow

    client = service.client
    run = client.get_run(run_id)
    model_uri = run.data.tags.get(MODEL_URI_TAG)
    if not model_uri:
        raise PipelineError(f"MLflow run {run_id} has no exported model; run `car-train export`")
    try:
        client.get_registered_model(model_name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(
            model_name, description="Used-car price (RUB) from raw fields; ONNX."
        )
    # The registry looks the logged model of a `models:/` source up through a default client.
    with service.as_default():
        version = client.create_model_version(model_name, model_uri, run_id=run_id, tags=tags)
    return str(version.version)


def version_by_alias(service: MlflowService, model_name: str, alias: str) -> Any | None:
    """The model version an alias points to, or None when the alias (or model) is unset."""
    import mlflow

    try:
        return service.client.get_model_version_by_alias(model_name, alias)
    except mlflow.exceptions.MlflowException:
        return None


def require_alias(service: MlflowService, model_name: str, alias: str) -> Any:
    """Like `version_by_alias`, but an unset alias is a PipelineError naming it."""
    version = version_by_alias(service, model_name, alias)
    if version is None:
        raise PipelineError(
            f"registered model {model_name!r} has no version with alias {alias!r} "
            f"in {service.registry_uri}"
        )
    return version


def require_version(service: MlflowService, model_name: str, version: str) -> Any:
    """The model version `version` of `model_name`.

    Raises:
        PipelineError: No such version (e.g. a fresh MLflow store beside an old registration).
    """
    import mlflow

    try:
        return service.client.get_model_version(model_name, version)
    except mlflow.exceptions.MlflowException as exc:
        raise PipelineError(
            f"registered model {model_name!r} has no version {version} in "
            f"{service.registry_uri}; "
            "re-run `car-train register`"
        ) from exc


def download_bundle(
    service: MlflowService, version: Any, directory: Path
) -> tuple[bytes, Manifest]:
    """Download and verify the serving bundle logged with a model version's run.

    Raises:
        PipelineError: The run has no bundle artifact.
        InvalidBundleError: The bundle fails `read_verified` (its message names the fault).
    """
    import mlflow

    try:
        local = service.client.download_artifacts(
            version.run_id, BUNDLE_ARTIFACT, dst_path=str(directory)
        )
    except (mlflow.exceptions.MlflowException, OSError) as exc:
        raise PipelineError(
            f"model version {version.version}: bundle artifact not found in run {version.run_id}"
        ) from exc
    verified = read_verified(Path(local))
    return verified.model_bytes, verified.manifest


def fetch_bundle(service: MlflowService, version: Any) -> tuple[bytes, Manifest]:
    """`download_bundle` into a temporary directory that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="car-price-bundle-") as tmp:
        return download_bundle(service, version, Path(tmp))
