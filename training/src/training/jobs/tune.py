"""`car-train tune`: an Optuna search over the main LightGBM parameters.

Each trial trains on the train split with early stopping on validation at the (faster) tuning
learning rate and is logged as a nested MLflow run. The parameters from params.yaml are the
first trial, so the best parameters are never worse on validation than the hand-set ones.
The best are written to `tune.tune_dir/best_params.json`, which `train` overlays.
"""

import logging
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from training.config import Params
from training.core.encoding import fit_vocabulary
from training.core.model import train_booster
from training.io import files, tracking
from training.jobs import outputs, split
from training.jobs.train import BEST_PARAMS_FILE

log = logging.getLogger(__name__)

#: The search space: (low, high) on a log scale; ints stay ints. `learning_rate` is not
#: searched (train sets its own; tuning runs at the faster `tune.learning_rate`).
SPACE: dict[str, tuple[float, float]] = {
    "alpha": (0.05, 0.5),
    "num_leaves": (31, 255),
    "min_child_samples": (3, 50),
    "feature_fraction": (0.4, 1.0),
    "lambda_l2": (1e-3, 30.0),
    "cat_smooth": (1.0, 50.0),
    "cat_l2": (1.0, 30.0),
    "max_cat_threshold": (16, 128),
}


def suggest(trial: Any) -> dict[str, Any]:
    """One point of the search space."""
    point: dict[str, Any] = {}
    for name, (low, high) in SPACE.items():
        if isinstance(low, int) and isinstance(high, int):
            point[name] = trial.suggest_int(name, low, high, log=True)
        else:
            point[name] = trial.suggest_float(name, low, high, log=True)
    return point


def baseline_point(base: dict[str, Any]) -> dict[str, Any]:
    """params.yaml's values, clipped into the search space (Optuna's first trial)."""
    return {name: type(low)(min(max(base[name], low), high)) for name, (low, high) in SPACE.items()}


def run(params: Params) -> dict[str, Any]:
    """Search, log each trial, write the best parameters.

    Returns:
        The best parameters and their validation MAPE.
    """
    import mlflow
    import optuna

    target = Path(params.tune.tune_dir) / BEST_PARAMS_FILE
    with outputs.all_or_nothing(target):
        train, val = split.read_split(params, "train"), split.read_split(params, "val")
        vocabulary = fit_vocabulary(train, params.train.min_category_count)
        base = msgspec.to_builtins(params.train.lightgbm)
        price = val["price"].to_numpy(np.float64)

        def objective(trial: optuna.Trial) -> float:
            candidate = {**base, **suggest(trial), "learning_rate": params.tune.learning_rate}
            with tracking.run(params.registry, run_name=f"trial-{trial.number}", nested=True):
                mlflow.log_params(candidate)
                pipeline, history = train_booster(
                    train,
                    val,
                    vocabulary,
                    candidate,
                    num_boost_round=params.tune.num_boost_round,
                    early_stopping_rounds=params.tune.early_stopping_rounds,
                    log_every=params.tune.num_boost_round + 1,
                )
                predicted = pipeline.predict_price(val)
                mape = float(np.mean(np.abs(predicted - price) / price))
                mlflow.log_metrics({"val_mape": mape, "best_iteration": history.best_iteration})
            log.info("trial %d: validation MAPE %.5f", trial.number, mape)
            return mape

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            direction="minimize", sampler=optuna.samplers.TPESampler(seed=params.tune.seed)
        )
        study.enqueue_trial(baseline_point(base))
        with tracking.run(params.registry, run_name="tune"):
            mlflow.set_tag("stage", "tune")
            study.optimize(objective, n_trials=params.tune.n_trials)
            mlflow.log_params({f"best.{k}": v for k, v in study.best_params.items()})
            mlflow.log_metric("best_val_mape", study.best_value)
        result = {
            "params": study.best_params,
            "val_mape": study.best_value,
            "trials": len(study.trials),
            "tune_learning_rate": params.tune.learning_rate,
        }
        files.write_json(result, target)
    log.info("best of %d trials: validation MAPE %.5f", len(study.trials), study.best_value)
    return result
