"""`car-train tune`: an Optuna search over the main LightGBM parameters.

Each trial trains on the train split with early stopping on validation at the (faster) tuning
learning rate and is logged as a nested MLflow run. The parameters from params.yaml are the
first trial, so the best parameters are never worse on validation than the hand-set ones.
The best are written to `paths.tuned_params`, which `train` overlays.
"""

import logging

import msgspec
import numpy as np

from training.config import Params
from training.core.encoding import fit_vocabulary
from training.core.model import train_booster
from training.core.tuning import baseline_point, suggest
from training.io import files, splits
from training.io.mlflow_service import MlflowService, TrackedRun
from training.records import TunedParams

log = logging.getLogger(__name__)


def run(params: Params, service: MlflowService) -> TunedParams:
    """Search, log each trial, write the best parameters.

    Returns:
        The best parameters and their validation MAPE.
    """
    import optuna

    target = params.paths.tuned_params
    with files.all_or_nothing(target):
        train = splits.read(params.paths.splits, "train")
        val = splits.read(params.paths.splits, "val")
        vocabulary = fit_vocabulary(train, params.train.min_category_count)
        base = msgspec.to_builtins(params.train.lightgbm)
        price = val["price"].to_numpy(np.float64)

        def objective(trial: optuna.Trial, search: TrackedRun) -> float:
            candidate = {**base, **suggest(trial), "learning_rate": params.tune.learning_rate}
            with service.run(f"trial-{trial.number}", parent=search) as tracked:
                tracked.log_params(candidate)
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
                tracked.log_metrics({"val_mape": mape, "best_iteration": history.best_iteration})
            log.info("trial %d: validation MAPE %.5f", trial.number, mape)
            return mape

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            direction="minimize", sampler=optuna.samplers.TPESampler(seed=params.tune.seed)
        )
        study.enqueue_trial(baseline_point(base))
        with service.run("tune") as search:
            search.set_tags({"stage": "tune"})
            study.optimize(lambda trial: objective(trial, search), n_trials=params.tune.n_trials)
            search.log_params({f"best.{k}": v for k, v in study.best_params.items()})
            search.log_metrics({"best_val_mape": study.best_value})
        result = TunedParams(
            params=study.best_params,
            val_mape=study.best_value,
            trials=len(study.trials),
            tune_learning_rate=params.tune.learning_rate,
        )
        files.write_json(result, target)
    log.info("best of %d trials: validation MAPE %.5f", result.trials, result.val_mape)
    return result
