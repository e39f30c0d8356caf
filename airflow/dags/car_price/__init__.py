"""What the car-price DAGs share: settings, how a step runs, serving checks.

Light to import (standard library and Airflow only): the DAG processor imports it on every
parse. The training code runs in the steps (`car-train`, `dvc repro`), never in here.
"""

from typing import Final

TRAINING_DAG_ID: Final = "car_price_training"
DRIFT_DAG_ID: Final = "car_price_drift"
ROLLOUT_DAG_ID: Final = "car_price_rollout"
