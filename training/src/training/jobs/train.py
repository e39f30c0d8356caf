"""`car-train train`: LightGBM on log(price) from the saved splits, tracked in MLflow."""

import logging

import msgspec
import numpy as np

from training.config import Params
from training.core.fitting import fit_pipeline
from training.core.metrics import regression_metrics
from training.io import files, pipeline_files, splits, tracking, tuned_params
from training.io.pipeline_files import TrainedModel
from training.records import TrainReport

log = logging.getLogger(__name__)


def run(params: Params) -> TrainReport:
    """Train the pipeline, calibrate its price scale, save it, and log the run.

    The run is tagged with the saved model's fingerprint: `evaluate` and `export` find it by
    that tag, so no run id is written into the (DVC-tracked) model files.

    Returns:
        The training report: best round, validation metrics, the model's fingerprint.
    """
    import mlflow

    paths = params.paths
    with files.all_or_nothing(paths.trained_pipeline, paths.train_report):
        train, val = splits.read(paths.splits, "train"), splits.read(paths.splits, "val")
        dataset = splits.read_summary(paths.splits)
        booster_params = tuned_params.booster_params(params)
        with tracking.run(params.registry, run_name="train"):
            mlflow.set_tags(
                {
                    "stage": "train",
                    "split_source": dataset.source,
                    **{f"data.{s}_sha256": dataset.of(s).sha256 for s in ("train", "val", "test")},
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
            pipeline, history = fit_pipeline(
                train,
                val,
                params.train,
                msgspec.to_builtins(booster_params),
                on_round=lambda step, l1: mlflow.log_metric("val_l1_log", l1, step=step),
            )
            scale = float(np.exp(pipeline.log_offset - history.base_log_price))
            val_metrics = regression_metrics(
                val["price"].to_numpy(dtype=np.float64), pipeline.predict_price(val)
            )
            mlflow.log_metrics(
                {
                    "best_iteration": history.best_iteration,
                    "log_offset": pipeline.log_offset,
                    "calibration_scale": scale,
                    **{f"val_{k}": v for k, v in val_metrics.items()},
                }
            )
            record = TrainedModel(
                vocabulary=pipeline.vocabulary.to_json(),
                log_offset=pipeline.log_offset,
                interval=pipeline.interval,
                best_iteration=history.best_iteration,
                lightgbm=msgspec.to_builtins(booster_params),
                val=val_metrics,
                dataset=dataset,
            )
            fingerprint = pipeline_files.save(pipeline, paths.trained_pipeline, record)
            mlflow.set_tag(tracking.PIPELINE_TAG, fingerprint)
        report = TrainReport(
            pipeline_sha256=fingerprint, best_iteration=history.best_iteration, val=val_metrics
        )
        files.write_json(report, paths.train_report)
    log.info(
        "trained %d rounds; validation MAPE %.4f (calibration scale %.3f)",
        history.best_iteration,
        val_metrics["mape"],
        scale,
    )
    return report
