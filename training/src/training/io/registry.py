"""The MLflow Model Registry: versions, the `challenger` / `champion` aliases, bundles."""

import tempfile
from pathlib import Path
from typing import Any

from shared_schema.bundle import Manifest
from training.errors import PipelineError
from training.io import bundle, tracking

CHALLENGER = "challenger"
CHAMPION = "champion"
MODEL_URI_TAG = "onnx_model_uri"


def register(client: Any, model_name: str, run_id: str, tags: dict[str, str]) -> str:
    """Register the ONNX model of `run_id` as a new version of `model_name`.

    Returns:
        The new version number (a string, as MLflow returns it).

    Raises:
        PipelineError: The run has no exported model.
    """
    import mlflow

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
    version = client.create_model_version(model_name, model_uri, run_id=run_id, tags=tags)
    return str(version.version)


def version_by_alias(client: Any, model_name: str, alias: str) -> Any | None:
    """The model version an alias points to, or None when the alias (or model) is unset."""
    import mlflow

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except mlflow.exceptions.MlflowException:
        return None


def require_alias(client: Any, model_name: str, alias: str) -> Any:
    """Like `version_by_alias`, but an unset alias is a PipelineError naming it."""
    version = version_by_alias(client, model_name, alias)
    if version is None:
        raise PipelineError(
            f"registered model {model_name!r} has no version with alias {alias!r} "
            f"in {tracking_uri()}"
        )
    return version


def tracking_uri() -> str:
    """The tracking URI MLflow is using."""
    import mlflow

    return str(mlflow.get_tracking_uri())


def download_bundle(version: Any, directory: Path) -> tuple[bytes, Manifest]:
    """Download and verify the serving bundle logged with a model version's run.

    Raises:
        PipelineError: The bundle is missing or its sha256 does not match its manifest.
    """
    import mlflow

    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path=tracking.BUNDLE_ARTIFACT, dst_path=str(directory)
        )
    except (mlflow.exceptions.MlflowException, OSError) as exc:
        raise PipelineError(
            f"model version {version.version}: bundle artifact not found in run {version.run_id}"
        ) from exc
    return bundle.read(Path(local))


def fetch_bundle(version: Any) -> tuple[bytes, Manifest]:
    """`download_bundle` into a temporary directory that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="car-price-bundle-") as tmp:
        return download_bundle(version, Path(tmp))
