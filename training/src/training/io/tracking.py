"""MLflow tracking: a local SQLite store by default (`registry.tracking_uri`, `artifact_dir`).

`MLFLOW_TRACKING_URI`, when set, points every command at a real tracking server instead.
Nothing is configured at import time; each job calls `configure` first.

Run ids never go into pipeline files (DVC hashes those, and a run id differs on every run):
a model's run is tagged with the model's fingerprint, and later steps find it by that tag.
"""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from training.config import RegistryParams
from training.errors import PipelineError
from training.io import environment

#: What `mlflow.set_tracking_uri`, `set_registry_uri` and `set_experiment` write into this
#: process's environment.
_MLFLOW_WRITES: Final = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID")
#: Tag of the run that trained a model: `training.io.pipeline_files.fingerprint` of it.
PIPELINE_TAG: Final = "pipeline_sha256"
#: Tag of the run that exported a bundle: the sha256 of its `model.onnx`.
MODEL_SHA_TAG: Final = "model_sha256"


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
    # MLflow also writes what it is given into the environment (MLFLOW_TRACKING_URI,
    # _REGISTRY_URI, _EXPERIMENT_ID) for subprocesses. Left there, its own write would read as
    # an operator's override to the next `configure` in this process, which then used the first
    # store whatever its params said (a test reading the registry after another project's, or
    # any long-lived process), and a subprocess would inherit another store's experiment id.
    # The environment is put back as it was; MLflow keeps all three in memory.
    with environment.restored(_MLFLOW_WRITES):
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        if mlflow.get_experiment_by_name(params.experiment) is None:
            artifacts = params.artifact_dir.resolve()
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
    """Start (or resume, given `run_id`) an MLflow run; failures mark it FAILED."""
    import mlflow

    configure(params)
    with mlflow.start_run(run_id=run_id, run_name=run_name, nested=nested) as active:
        yield active


def find_run(params: RegistryParams, tag: str, value: str, producer: str) -> str:
    """The id of the latest run of the experiment tagged `tag = value`.

    Args:
        params: The registry section (which store and experiment).
        tag: `PIPELINE_TAG` or `MODEL_SHA_TAG`.
        value: The fingerprint or sha256 looked for.
        producer: The command whose run carries the tag ("car-train train").

    Raises:
        PipelineError: No such run (e.g. a fresh MLflow store beside old pipeline files).
    """
    import mlflow

    configure(params)
    runs = mlflow.search_runs(
        experiment_names=[params.experiment],
        filter_string=f"tags.{tag} = '{value}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not runs:
        raise PipelineError(
            f"no MLflow run tagged {tag}={value[:12]}… in {mlflow.get_tracking_uri()}; "
            f"re-run `{producer}`"
        )
    return str(runs[0].info.run_id)


def client(params: RegistryParams) -> Any:
    """An `MlflowClient` on the configured store."""
    from mlflow import MlflowClient

    configure(params)
    return MlflowClient()
