"""`car-train train`: LightGBM on log(price) from the saved splits, tracked in MLflow."""

import logging

import msgspec
import numpy as np
import pandas as pd

from training.config import Params
from training.core.fitting import market_rows
from training.core.market_index import Levels, period_of
from training.errors import PipelineError
from training.io import files, splits, tuned_params
from training.io.mlflow_service import MlflowService
from training.lifecycle.fit import TrainingRows, fit
from training.records import TrainReport

log = logging.getLogger(__name__)


def run(params: Params, service: MlflowService) -> TrainReport:
    """Train the pipeline, calibrate its price scale, save it, and log the run.

    The run is tagged with the saved model's fingerprint: `evaluate` and `export` find it by
    that tag, so no run id is written into the (DVC-tracked) model files.

    Returns:
        The training report: best round, validation metrics, the model's fingerprint.
    """
    paths = params.paths
    with files.all_or_nothing(paths.trained_pipeline, paths.train_report):
        train, val = splits.read(paths.splits, "train"), splits.read(paths.splits, "val")
        dataset = splits.read_summary(paths.splits)
        lightgbm = msgspec.to_builtins(tuned_params.booster_params(params))
        with service.run("train") as tracked:
            tracked.set_tags(
                {
                    "stage": "train",
                    "split_source": dataset.source,
                    **{f"data.{s}_sha256": dataset.of(s).sha256 for s in ("train", "val", "test")},
                }
            )
            tracked.log_params(
                {
                    **{f"lgbm.{k}": v for k, v in lightgbm.items()},
                    "num_boost_round": params.train.num_boost_round,
                    "early_stopping_rounds": params.train.early_stopping_rounds,
                    "min_category_count": params.train.min_category_count,
                    "train_rows": len(train),
                    "val_rows": len(val),
                }
            )
            times = _event_times(params, train, val)
            # A first model: one market, nothing to deflate by; the fit records its level.
            market = market_rows(
                (*times, times[1]), Levels.flat(period_of(times[0])), params.market.window_days
            )
            rows = TrainingRows(train=train, val=val, dataset=dataset, market=market)
            fitted = fit(tracked, rows, params.train, lightgbm, paths.trained_pipeline)
            scale = float(np.exp(fitted.pipeline.log_offset - fitted.history.base_log_price))
            tracked.log_metrics(
                {
                    "best_iteration": fitted.history.best_iteration,
                    "log_offset": fitted.pipeline.log_offset,
                    "calibration_scale": scale,
                    **{f"val_{k}": v for k, v in fitted.metrics.items()},
                }
            )
        report = TrainReport(
            pipeline_sha256=fitted.fingerprint,
            best_iteration=fitted.history.best_iteration,
            val=fitted.metrics,
        )
        files.write_json(report, paths.train_report)
    log.info(
        "trained %d rounds; validation MAPE %.4f (calibration scale %.3f)",
        fitted.history.best_iteration,
        fitted.metrics["mape"],
        scale,
    )
    return report


def _event_times(
    params: Params, train: pd.DataFrame, val: pd.DataFrame
) -> tuple[pd.Series, pd.Series]:
    """When each train and validation listing was asked, from the label table.

    Raises:
        PipelineError: A split's listing has no label (the splits are older than the labels).
    """
    labels = files.read_parquet(
        params.paths.labels, "labels", "car-train features", ("listing_id", "event_timestamp")
    )
    times = labels.set_index("listing_id")["event_timestamp"]
    found = tuple(times.reindex(frame["listing_id"]) for frame in (train, val))
    if any(t.isna().any() for t in found):
        raise PipelineError(
            f"{params.paths.splits}: listings without a label in {params.paths.labels}; "
            "re-run `car-train split`"
        )
    return found[0], found[1]
