"""The DAGs' settings: environment variables read once per parse, each with a local default.

Every setting has its default here and nowhere else. Values a run may change (the params file,
the prediction log, the serving URL, Prometheus and its job, the model directory, the verify
timeout) become DAG params
with these defaults, so a run's conf or the trigger form overrides them; the rest shape the
tasks (how a step runs, retries, resources) and are fixed per deployment. They are environment
variables rather than Airflow Variables: the choice of operator is made when the file is
parsed, and reading a Variable there would cost a metadata-database query on every parse.
"""

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

Execution = Literal["local", "kubernetes"]

#: The checkout the DAG files live in (airflow/dags/car_price/ is three folders down).
_CHECKOUT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Settings:
    """One deployment's settings (`CAR_PRICE_<FIELD>` environment variables)."""

    #: Where the steps run: `local` (a subprocess on the Airflow worker) or `kubernetes`
    #: (one pod per step, `KubernetesPodOperator`).
    execution: Execution = "local"
    #: The project checkout: the steps' working directory (params.yaml, dvc.yaml, data/).
    project_dir: str = str(_CHECKOUT)
    #: The pipeline's params file, relative to `project_dir` or absolute.
    params_file: str = "params.yaml"
    #: The training CLI and DVC on the worker (local execution).
    car_train: str = "car-train"
    dvc: str = "dvc"
    #: The server's prediction log directory (its `PREDICTION_LOG_DIR`).
    prediction_log_dir: str = str(_CHECKOUT / "data" / "prediction_log")
    #: The running server to verify after a publish (its `/ready` answers `model_version`),
    #: used when no Prometheus is configured.
    serving_url: str = "http://127.0.0.1:8000"
    #: The Prometheus that scrapes every server: when set, `verify_serving` waits until every
    #: target of `prometheus_job` that is up serves the published version (`carprice_model_info`)
    #: instead of asking `serving_url` alone. Empty: the `/ready` poll of one server.
    prometheus_url: str = ""
    #: The servers' scrape job: `car-price` (monitoring/prometheus.yml), `car-price-kubernetes`
    #: (prometheus-kubernetes.yml), `<namespace>/<PodMonitor>` under the Prometheus Operator.
    prometheus_job: str = "car-price"
    #: The directory the server serves (its `MODEL_DIR`); empty: `paths.serving_bundle`.
    model_dir: str = ""
    #: How long the server may take to answer with the new version (its reload poll + warm-up).
    verify_timeout_s: float = 300.0
    #: MLflow tracking server for every step (read from MLflow's own `MLFLOW_TRACKING_URI`);
    #: empty: `registry.tracking_uri` in params.yaml.
    mlflow_tracking_uri: str = ""
    #: Retries of the steps that can fail transiently (MLflow, the registry, the server), and
    #: the first delay; each further retry waits twice as long.
    retries: int = 2
    retry_delay_s: float = 60.0
    #: How often a DAG waiting for another one looks at it.
    poke_interval_s: int = 30
    #: Kubernetes execution: the training image (training/Dockerfile), its namespace, the
    #: claims holding the project's data/, the server's prediction log and the raw data files
    #: (params.yaml `data.raw_dir`, read-only), and one pod's resources.
    image: str = "car-price-training:latest"
    namespace: str = "car-price"
    data_claim: str = "car-price-data"
    log_claim: str = "car-price-prediction-log"
    raw_claim: str = "car-price-raw-data"
    cpu: str = "2"
    memory: str = "4Gi"


PREFIX = "CAR_PRICE_"
#: Settings read from a variable of another tool, not `CAR_PRICE_<FIELD>`.
_OWN_NAMES = {"mlflow_tracking_uri": "MLFLOW_TRACKING_URI"}


def variable(name: str) -> str:
    """The environment variable of the setting `name`."""
    return _OWN_NAMES.get(name, PREFIX + name.upper())


def load(environ: dict[str, str] | None = None) -> Settings:
    """Read the settings from their environment variables (`variable`; unset: the default).

    Args:
        environ: The environment; `os.environ` when None.

    Raises:
        ValueError: A value of the wrong type, or an unknown execution mode.
    """
    env = os.environ if environ is None else environ
    defaults = Settings()
    values: dict[str, object] = {}
    for field in fields(Settings):
        raw = env.get(variable(field.name))
        if raw is None or raw == "":
            continue
        kind = type(getattr(defaults, field.name))
        try:
            values[field.name] = kind(raw)
        except ValueError as exc:
            raise ValueError(f"{variable(field.name)}={raw!r}: not a {kind.__name__}") from exc
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.execution not in ("local", "kubernetes"):
        raise ValueError(f"{PREFIX}EXECUTION={settings.execution!r}: use 'local' or 'kubernetes'")
    return settings
