"""`car_price_drift` (daily): drift of the day's requests; retrain, publish, verify when needed.

The window is the run's data interval, never "now", so a backfill of a past day reads that
day's prediction log: `car-train drift --log DIR --since <start> --until <end>`. Its verdict
(`car-train outcome drift`, from `paths.drift/<run>/summary.json`) decides:

- no change: every later task is skipped, with the reasons (none) in `retrain_needed`'s log;
- refresh (the verdict's action when only the error moved, `drift.error_alone`):
  `car-train refresh-level` prices with the champion's forest at the newest labelled window's
  market level, through the same gate; `refresh_outcome` reports it, then as below;
- retrain: `car_price_training` is triggered in mode `retrain` and waited for; its gate
  (`gate_outcome`) either refused the challenger (the rest is skipped, the reason logged) or
  promoted it; then the champion's bundle is published into the serving folder (`publish`,
  `car-train fetch-model`: `car-train retrain` already published it, so this changes nothing
  unless that publish failed) and every running server must serve the new version
  (`verify_serving`): every target of the scrape job up, per Prometheus' `carprice_model_info`,
  or, with no Prometheus configured, the one server's `/ready`. Otherwise the run fails naming
  the job or URL and what it last saw.

An empty or missing log window fails `drift` with the CLI's message naming the folder and the
counts; a failed training run fails `retrain` and nothing is published.
"""

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, chain, get_current_context, task

from car_price import DRIFT_DAG_ID, TRAINING_DAG_ID, serving, steps
from car_price import settings as car_settings

SETTINGS = car_settings.load()
#: The drift run's folder under paths.drift: the DAG run and the try, in the characters
#: `car-train drift --run` accepts (a cleared run writes a new folder, never over an old one).
#: No single quotes in templates: a local step's command is shell-quoted around them.
DRIFT_RUN = '{{ run_id | replace(":", "") | replace("+", "") }}-try{{ ti.try_number }}'


with DAG(
    dag_id=DRIFT_DAG_ID,
    description="Daily drift of the prediction log; retrain, publish and verify when needed.",
    # Data intervals (not a trigger timetable): each run owns yesterday's requests.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    default_args=steps.default_args(SETTINGS),
    params={
        "params_file": Param(SETTINGS.params_file, type="string", description="params.yaml"),
        "log_dir": Param(
            steps.log_dir_default(SETTINGS), type="string", description="prediction log"
        ),
        "serving_url": Param(SETTINGS.serving_url, type="string", description="car-serve"),
        "prometheus_url": Param(
            SETTINGS.prometheus_url, type="string", description="Prometheus; empty: /ready"
        ),
        "prometheus_job": Param(SETTINGS.prometheus_job, type="string", description="scrape job"),
        "model_dir": Param(
            SETTINGS.model_dir, type="string", description="served bundle; empty: params"
        ),
        "verify_timeout_s": Param(SETTINGS.verify_timeout_s, type="number", minimum=0),
    },
    tags=["car-price", "monitoring"],
    doc_md=__doc__,
) as dag:
    drift = steps.step(
        "drift",
        [
            "drift",
            "--log",
            "{{ params.log_dir }}",
            "--since",
            "{{ data_interval_start.isoformat() }}",
            "--until",
            "{{ data_interval_end.isoformat() }}",
            "--run",
            DRIFT_RUN,
        ],
        SETTINGS,
        execution_timeout=timedelta(hours=1),
    )
    drift_outcome = steps.step(
        "drift_outcome", ["outcome", "drift", "--run", DRIFT_RUN], SETTINGS, xcom=True
    )

    @task.branch
    def retrain_needed() -> str | None:
        """Refresh the level or retrain as the verdict's action says; otherwise skip the rest."""
        ti = get_current_context()["ti"]
        outcome: dict[str, Any] = ti.xcom_pull(task_ids="drift_outcome")
        action = outcome["action"]
        if action == "none":
            print(f"drift run {outcome['run']}: no change (no rule triggered); skipping the rest")
            return None
        reasons = "".join(f"\n  - {reason}" for reason in outcome["reasons"])
        print(f"drift run {outcome['run']}: {action}{reasons}")
        return "refresh_level" if action == "refresh" else "retrain"

    # The error moved and the cars did not: the champion's forest at the newest market level,
    # through the same gate and publish (`car-train refresh-level`). No retries: its failures
    # are refusals (a window it cannot trust, a level past the bound), the same on every try;
    # the failed task is the alert.
    refresh_level = steps.step(
        "refresh_level",
        ["refresh-level"],
        SETTINGS,
        execution_timeout=timedelta(hours=1),
        retries=0,
    )
    refresh_outcome = steps.step(
        "refresh_outcome", ["outcome", "refresh"], SETTINGS, xcom=True, **steps.retrying(SETTINGS)
    )

    retrain = TriggerDagRunOperator(
        task_id="retrain",
        trigger_dag_id=TRAINING_DAG_ID,
        conf={"mode": "retrain", "params_file": "{{ params.params_file }}"},
        wait_for_completion=True,
        poke_interval=SETTINGS.poke_interval_s,
        allowed_states=["success"],
        failed_states=["failed"],
        execution_timeout=steps.LONG,
    )

    # Either branch ran (the other was skipped): go on after the one that succeeded.
    @task.short_circuit(trigger_rule="none_failed_min_one_success")
    def promoted() -> bool:
        """Go on to publish only if the refresh's or the training run's gate promoted."""
        ti = get_current_context()["ti"]
        outcome: dict[str, Any] | None = ti.xcom_pull(task_ids="refresh_outcome")
        run_id = ti.xcom_pull(task_ids="retrain", key="trigger_run_id")
        if outcome is None and run_id is not None:
            outcome = ti.xcom_pull(dag_id=TRAINING_DAG_ID, run_id=run_id, task_ids="gate_outcome")
        if not outcome:
            raise RuntimeError(
                f"neither refresh_outcome nor {TRAINING_DAG_ID} run {run_id} left a gate outcome"
            )
        version = outcome["challenger_version"]
        if not outcome["promote"]:
            print(f"gate refused version {version}: {outcome['reason']}; nothing is published")
            return False
        print(f"gate promoted version {version} (MLflow run {outcome['mlflow_run_id']})")
        ti.xcom_push(key="champion_version", value=outcome["champion_version_after"])
        return True

    publish = steps.step(
        "publish",
        [
            "fetch-model",
            "--alias",
            "champion",
            # Empty: paths.serving_bundle, what car-serve serves by default.
            "--out={{ params.model_dir }}",
        ],
        SETTINGS,
        **steps.retrying(SETTINGS),
    )

    @task(retries=SETTINGS.retries)
    def verify_serving() -> str:
        """Every running server serves the promoted version (Prometheus), or this fails."""
        context = get_current_context()
        version = str(context["ti"].xcom_pull(task_ids="promoted", key="champion_version"))
        params = context["params"]
        timeout_s = float(params["verify_timeout_s"])
        if params["prometheus_url"]:
            job = params["prometheus_job"]
            serving.wait_for_version_everywhere(
                params["prometheus_url"], job, version, timeout_s=timeout_s
            )
            print(f"every target of job {job} serves model version {version}")
        else:
            serving.wait_for_version(params["serving_url"], version, timeout_s=timeout_s)
            print(f"{params['serving_url']} serves model version {version}")
        return version

    branch, gate_passed = retrain_needed(), promoted()
    chain(drift, drift_outcome, branch)
    branch >> [refresh_level, retrain]
    chain(refresh_level, refresh_outcome, gate_passed)
    chain(retrain, gate_passed, publish, verify_serving())
