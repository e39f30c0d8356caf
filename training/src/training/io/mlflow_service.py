"""MLflow as a service object: one store, one experiment, and the runs a job logs into.

A job is handed an `MlflowService` (`car-train` builds it from params.yaml's `registry`
section; `MLFLOW_TRACKING_URI`, when set, points it at a real tracking server instead). The
service owns its state: its URIs and an `MlflowClient` made with them. It never writes into
`os.environ` and leaves MLflow's process-wide state as it found it, so two services on two
stores in one process (tests, a long-lived worker) never see each other's store. (Setting
MLflow's global URIs used to write them into the environment too, where the next project in the
process read them back as an operator's override and used the first store.)

Run ids never go into pipeline files (DVC hashes those, and a run id differs on every run):
a model's run is tagged with the model's fingerprint, and later steps find it by that tag.
"""

import contextlib
import functools
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Self

from training.config import RegistryParams
from training.errors import PipelineError

#: Tag of the run that trained a model: `training.io.pipeline_files.fingerprint` of it.
PIPELINE_TAG: Final = "pipeline_sha256"
#: Tag of the run that exported a bundle: the sha256 of its `model.onnx`.
MODEL_SHA_TAG: Final = "model_sha256"
#: MLflow reads these when it is imported: no usage telemetry leaves the pipeline. Settings of
#: the process, so `car-train` sets them (unless already set) before any job imports MLflow.
TELEMETRY_OFF: Final = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


@dataclass(frozen=True)
class MlflowService:
    """One MLflow store (tracking and registry) and the experiment a job's runs go to."""

    tracking_uri: str
    registry_uri: str
    experiment: str
    artifact_dir: Path

    @classmethod
    def from_params(cls, params: RegistryParams, environ: Mapping[str, str] = os.environ) -> Self:
        """The store of params.yaml's `registry` section, or `MLFLOW_TRACKING_URI`'s if set."""
        uri = environ.get("MLFLOW_TRACKING_URI") or params.tracking_uri
        return cls(
            tracking_uri=uri,
            registry_uri=uri,
            experiment=params.experiment,
            artifact_dir=params.artifact_dir,
        )

    @functools.cached_property
    def client(self) -> Any:
        """An `MlflowClient` on this store (a local SQLite store's folder is created)."""
        from mlflow import MlflowClient

        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    @functools.cached_property
    def experiment_id(self) -> str:
        """The experiment's id; created, with its artifacts under `artifact_dir`, if missing."""
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return str(found.experiment_id)
        artifacts = self.artifact_dir.resolve()
        artifacts.mkdir(parents=True, exist_ok=True)
        return str(self.client.create_experiment(self.experiment, artifacts.as_uri()))

    @contextlib.contextmanager
    def run(
        self,
        name: str | None = None,
        *,
        run_id: str | None = None,
        parent: "TrackedRun | None" = None,
    ) -> Iterator["TrackedRun"]:
        """Start a run of the experiment (or resume `run_id`); a failure marks it FAILED.

        Args:
            name: The new run's name.
            run_id: An existing run to log into again (`find_run`).
            parent: The run this one is nested under (a tuning trial's search).
        """
        from mlflow.tracking.context.registry import resolve_tags
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

        if run_id is None:
            tags = {MLFLOW_PARENT_RUN_ID: parent.run_id} if parent is not None else {}
            if name:
                tags[MLFLOW_RUN_NAME] = name
            # The context tags (source, user, git commit) `mlflow.start_run` would add.
            created = self.client.create_run(
                self.experiment_id, tags=resolve_tags(tags), run_name=name
            )
            run_id = str(created.info.run_id)
        else:
            self.client.update_run(run_id, status="RUNNING")
        try:
            yield TrackedRun(self, run_id)
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id, "FINISHED")

    @contextlib.contextmanager
    def as_default(self) -> Iterator[None]:
        """This store as MLflow's process-wide default inside the block, put back afterwards.

        For MLflow code that makes its own default `MlflowClient()`: logging a model, and the
        registry resolving a new version's `models:/` source. The URIs are set on MLflow's
        module state, not through `mlflow.set_tracking_uri`, which also writes them into
        `os.environ`. Those attributes are MLflow's private state (the version is pinned in
        uv.lock; tests/training/io/test_mlflow_service.py fails fast if they move), and they are
        process-wide: one job at a time per process, as `car-train` runs them.
        """
        from mlflow.tracking._model_registry import utils as registry_state
        from mlflow.tracking._tracking_service import utils as tracking_state

        state = (
            (tracking_state, "_tracking_uri", self.tracking_uri),
            (registry_state, "_registry_uri", self.registry_uri),
        )
        saved = [getattr(module, name) for module, name, _ in state]
        for module, name, value in state:
            setattr(module, name, value)
        try:
            yield
        finally:
            for (module, name, _), value in zip(state, saved, strict=True):
                setattr(module, name, value)

    def find_run(self, tag: str, value: str, producer: str) -> str:
        """The id of the experiment's latest run tagged `tag = value`.

        Args:
            tag: `PIPELINE_TAG` or `MODEL_SHA_TAG`.
            value: The fingerprint or sha256 looked for.
            producer: The command whose run carries the tag ("car-train train").

        Raises:
            PipelineError: No such run (e.g. a fresh MLflow store beside old pipeline files).
        """
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.{tag} = '{value}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not runs:
            raise PipelineError(
                f"no MLflow run tagged {tag}={value[:12]}… in {self.tracking_uri}; "
                f"re-run `{producer}`"
            )
        return str(runs[0].info.run_id)


@dataclass(frozen=True)
class TrackedRun:
    """One run of a service's store: what a job logs, through the service's client."""

    service: MlflowService
    run_id: str

    def set_tags(self, tags: Mapping[str, object]) -> None:
        """Set run tags (values as text)."""
        from mlflow.entities import RunTag

        batch = [RunTag(key, str(value)) for key, value in tags.items()]
        self.service.client.log_batch(self.run_id, tags=batch)

    def log_params(self, params: Mapping[str, object]) -> None:
        """Log run parameters (values as text)."""
        from mlflow.entities import Param

        batch = [Param(key, str(value)) for key, value in params.items()]
        self.service.client.log_batch(self.run_id, params=batch)

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log metrics at one step, with one timestamp."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, value, now, step) for key, value in metrics.items()]
        self.service.client.log_batch(self.run_id, metrics=batch)

    def log_artifacts(self, path: Path, artifact_path: str) -> None:
        """Log a file, or a folder's files, under `artifact_path` of the run."""
        if path.is_dir():
            self.service.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.service.client.log_artifact(self.run_id, str(path), artifact_path)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """This run as MLflow's active run on this store, for the fluent API inside the block.

        Logging a model needs it: `mlflow.<flavour>.log_model` logs into the active run. The
        run goes on afterwards (its owner, `MlflowService.run`, ends it).
        """
        import mlflow

        with self.service.as_default():
            mlflow.start_run(run_id=self.run_id)
            try:
                yield
            finally:
                mlflow.end_run()
            # `end_run` marks the run FINISHED: running again until its owner ends it.
            self.service.client.update_run(self.run_id, status="RUNNING")
