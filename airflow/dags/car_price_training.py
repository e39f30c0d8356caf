"""`car_price_training`: the DVC pipeline stage by stage, or a retrain on new market data.

Mode `pipeline` (the default) runs `dvc repro --single-item <stage>` for each stage of
dvc.yaml in order, so DVC decides what is stale and records it in dvc.lock; its gate is
`promote` and `publish` writes the champion's bundle. Mode `retrain` runs `car-train retrain`
(2020 + new market rows, gated on the newest 2022 slice; it promotes and publishes itself).
Either way `gate_outcome` pushes the gate's decision and the challenger's MLflow run id as
XComs (`mlflow_run_id`, `promoted`, `champion_version`) and logs them. Manual or triggered
(car_price_drift triggers mode `retrain`); no schedule.
"""

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, BaseOperator, Param, chain, get_current_context, task

from car_price import TRAINING_DAG_ID, steps
from car_price import settings as car_settings

SETTINGS = car_settings.load()
#: dvc.yaml's stages in order (tests/airflow checks this list against dvc.yaml).
STAGES = (
    "ingest",
    "features",
    "feature_store",
    "split",
    "tune",
    "train",
    "evaluate",
    "export",
    "register",
    "promote",
    "publish",
)
#: Stages that talk to MLflow's store (a server, in production): retried with backoff.
_TRANSIENT = {"train", "evaluate", "export", "register", "promote", "publish"}
_LONG = {"tune", "train"}

with DAG(
    dag_id=TRAINING_DAG_ID,
    description="The DVC pipeline stage by stage, or a retrain gated on the newest 2022 slice.",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=steps.default_args(SETTINGS),
    params={
        "mode": Param("pipeline", enum=["pipeline", "retrain"], description="what to run"),
        "params_file": Param(SETTINGS.params_file, type="string", description="params.yaml"),
    },
    tags=["car-price", "training"],
    doc_md=__doc__,
) as dag:

    @task.branch
    def choose_mode() -> str:
        """The first task of the mode in the run's params."""
        mode = get_current_context()["params"]["mode"]
        print(f"mode: {mode}")
        return "retrain" if mode == "retrain" else f"stage_{STAGES[0]}"

    def _stage(stage: str) -> BaseOperator:
        options: dict[str, Any] = steps.retrying(SETTINGS) if stage in _TRANSIENT else {}
        if stage in _LONG:
            options["execution_timeout"] = steps.LONG
        return steps.step(
            f"stage_{stage}", ["repro", "--single-item", stage], SETTINGS, tool="dvc", **options
        )

    stages = [_stage(stage) for stage in STAGES]
    promote_outcome = steps.step(
        "promote_outcome", ["outcome", "promote"], SETTINGS, xcom=True, **steps.retrying(SETTINGS)
    )
    retrain = steps.step(
        "retrain",
        ["retrain"],
        SETTINGS,
        execution_timeout=steps.LONG,
        **steps.retrying(SETTINGS),
    )
    retrain_outcome = steps.step(
        "retrain_outcome", ["outcome", "retrain"], SETTINGS, xcom=True, **steps.retrying(SETTINGS)
    )

    @task(trigger_rule="none_failed_min_one_success")
    def gate_outcome() -> dict[str, Any]:
        """The decision of whichever gate ran, logged and pushed as separate XComs."""
        ti = get_current_context()["ti"]
        pulled = ti.xcom_pull(task_ids=["retrain_outcome", "promote_outcome"])
        outcomes = [o for o in (pulled or []) if o]
        if len(outcomes) != 1:
            raise RuntimeError(f"expected one gate outcome, got {outcomes!r}")
        outcome: dict[str, Any] = outcomes[0]
        verdict = "promoted" if outcome["promote"] else "refused"
        print(
            f"{outcome['step']}: version {outcome['challenger_version']} "
            f"(MLflow run {outcome['mlflow_run_id']}) {verdict}: {outcome['reason']}; "
            f"champion now {outcome['champion_version_after']}"
        )
        ti.xcom_push(key="mlflow_run_id", value=outcome["mlflow_run_id"])
        ti.xcom_push(key="promoted", value=outcome["promote"])
        ti.xcom_push(key="champion_version", value=outcome["champion_version_after"])
        return outcome

    mode = choose_mode()
    gate = gate_outcome()
    chain(mode, *stages, promote_outcome, gate)
    chain(mode, retrain, retrain_outcome, gate)
