"""`car_price_rollout` (every minute): `car-train watch` judges the rollout on trial.

Each run asks the Prometheus of `CAR_PRICE_PROMETHEUS_URL` (the run's `prometheus_url`) for the
staged challenger's figures, or, with none staged, the newest promotion's within
`rollout.post_promotion_minutes` of its publish, and acts as training/README.md's "Safe
rollout" says: a breach withdraws the challenger or rolls the promotion back (tagged in the
registry; CarPriceModelRolledBack fires); no breach with a challenger steps its canary share up
`rollout.canary_steps`; nothing on trial does nothing. The verdict, one JSON line, ends the
task's log (not an XCom: a pod's XCom file would take `--out`, here the serving folder). No
retries: the next minute's run is the retry, and `max_active_runs=1` keeps two watchers from
acting at once. Without a Prometheus URL the run fails at once naming the setting: the
watcher judges nothing without figures.
"""

from datetime import datetime, timedelta

from airflow.sdk import DAG, CronTriggerTimetable, Param, chain, get_current_context, task

from car_price import ROLLOUT_DAG_ID, steps
from car_price import settings as car_settings

SETTINGS = car_settings.load()

with DAG(
    dag_id=ROLLOUT_DAG_ID,
    description="car-train watch every minute: withdraw, roll back or step the canary.",
    schedule=CronTriggerTimetable("* * * * *", timezone="UTC"),
    start_date=datetime(2026, 12, 1),
    catchup=False,
    max_active_runs=1,
    default_args=steps.default_args(SETTINGS),
    params={
        "params_file": Param(SETTINGS.params_file, type="string", description="params.yaml"),
        "prometheus_url": Param(
            SETTINGS.prometheus_url, type="string", description="the Prometheus scraping car-serve"
        ),
        "model_dir": Param(
            SETTINGS.model_dir, type="string", description="served bundle; empty: params"
        ),
    },
    tags=["car-price", "rollout"],
    doc_md=__doc__,
) as dag:

    @task(execution_timeout=timedelta(seconds=30))
    def prometheus_set() -> None:
        """Fail naming the setting when no Prometheus is configured."""
        if not get_current_context()["params"]["prometheus_url"]:
            variable = car_settings.variable("prometheus_url")
            raise ValueError(f"no Prometheus to judge the rollout on: set {variable}")

    watch = steps.step(
        "watch",
        [
            "watch",
            "--prometheus={{ params.prometheus_url }}",
            # Empty: paths.serving_bundle, what car-serve serves by default.
            "--out={{ params.model_dir }}",
        ],
        SETTINGS,
    )
    chain(prometheus_set(), watch)
