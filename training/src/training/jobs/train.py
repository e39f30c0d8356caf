"""`car-train train`: LightGBM on log(price) from the saved splits, tracked in MLflow."""

import logging
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from training.config import LightGBMParams, Params
from training.core.encoding import fit_vocabulary
from training.core.metrics import regression_metrics
from training.core.model import calibrated, train_booster
from training.errors import PipelineError
from training.io import files, pipeline_files, tracking
from training.jobs import outputs, split

log = logging.getLogger(__name__)

BEST_PARAMS_FILE = "best_params.json"
REPORT_FILE = "train.json"


def lightgbm_params(params: Params) -> LightGBMParams:
    """`train.lightgbm` from params.yaml, with `tune`'s best parameters overlaid if asked.

    Raises:
        PipelineError: The tuned file is missing, corrupt, or has an unknown key or bad value.
    """
    base = params.train.lightgbm
    if not params.train.use_tuned_params:
        return base
    path = Path(params.tune.tune_dir) / BEST_PARAMS_FILE
    if not path.is_file():
        raise PipelineError(
            f"{path}: tuned parameters not found; run `car-train tune` "
            "or set train.use_tuned_params: false"
        )
    try:
        tuned = files.read_json(path)
        return msgspec.convert({**msgspec.to_builtins(base), **tuned["params"]}, LightGBMParams)
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError) as exc:
        raise PipelineError(f"{path}: bad tuned parameters: {exc}") from exc


def run(params: Params) -> dict[str, Any]:
    """Train the pipeline, calibrate its price scale, save it, and log the run.

    Returns:
        The training report: the MLflow run id, best round, validation metrics.
    """
    import mlflow

    model_dir = Path(params.train.model_dir)
    report_path = Path(params.data.reports_dir) / REPORT_FILE
    with outputs.all_or_nothing(model_dir, report_path):
        train, val = split.read_split(params, "train"), split.read_split(params, "val")
        dataset = files.read_json(Path(params.split.splits_dir) / split.SUMMARY_FILE)
        booster_params = lightgbm_params(params)
        vocabulary = fit_vocabulary(train, params.train.min_category_count)
        with tracking.run(params.registry, run_name="train") as active:
            mlflow.set_tags(
                {
                    "stage": "train",
                    "split_source": params.split.source,
                    "data.train_sha256": dataset["splits"]["train"]["sha256"],
                    "data.val_sha256": dataset["splits"]["val"]["sha256"],
                    "data.test_sha256": dataset["splits"]["test"]["sha256"],
                }
            )
            mlflow.log_params(
                {
                    **{f"lgbm.{k}": v for k, v in msgspec.to_builtins(booster_params).items()},
                    "num_boost_round": params.train.num_boost_round,
                    "early_stopping_rounds": params.train.early_stopping_rounds,
                    "min_category_count": params.train.min_category_count,
                    "train_rows": len(train),
                    "val_rows": len(val),
                }
            )
            pipeline, history = train_booster(
                train,
                val,
                vocabulary,
                msgspec.to_builtins(booster_params),
                num_boost_round=params.train.num_boost_round,
                early_stopping_rounds=params.train.early_stopping_rounds,
                log_every=params.train.log_every,
                on_round=lambda step, l1: mlflow.log_metric("val_l1_log", l1, step=step),
            )
            price = val["price"].to_numpy(dtype=np.float64)
            if params.train.calibrate_scale:
                pipeline = calibrated(pipeline, val)
            val_metrics = regression_metrics(price, pipeline.predict_price(val))
            mlflow.log_metrics(
                {
                    "best_iteration": history.best_iteration,
                    "log_offset": pipeline.log_offset,
                    "calibration_scale": float(
                        np.exp(pipeline.log_offset - history.base_log_price)
                    ),
                    **{f"val_{k}": v for k, v in val_metrics.items()},
                }
            )
            report: dict[str, Any] = {
                "run_id": active.info.run_id,
                "best_iteration": history.best_iteration,
                "log_offset": pipeline.log_offset,
                "lightgbm": msgspec.to_builtins(booster_params),
                "val": val_metrics,
                "data": dataset,
            }
            pipeline_files.save(pipeline, model_dir, report)
            files.write_json(
                {"best_iteration": history.best_iteration, "val": val_metrics}, report_path
            )
    log.info(
        "trained %d rounds; validation MAPE %.4f (calibration scale %.3f)",
        history.best_iteration,
        val_metrics["mape"],
        np.exp(pipeline.log_offset - history.base_log_price),
    )
    return report
