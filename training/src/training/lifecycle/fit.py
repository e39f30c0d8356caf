"""Lifecycle, step 1: fit a price pipeline inside an MLflow run and save it.

`car-train train` (2020 rows) and `car-train retrain` (2020 + new market rows, recency
weighted) fit here; they differ only in the rows, weights and calibration rows they pass. The
run is tagged with the saved model's fingerprint, which is how `export` finds it again.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.config import TrainParams
from training.core.fitting import MarketRows, fit_pipeline
from training.core.market_index import levels_of
from training.core.metrics import regression_metrics
from training.core.model import PricePipeline, TrainingHistory
from training.io import pipeline_files
from training.io.mlflow_service import PIPELINE_TAG, TrackedRun
from training.records import DatasetSummary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingRows:
    """What a fit reads.

    Attributes:
        train: Training rows: raw fields and `price`.
        val: Early-stopping rows.
        dataset: The rows' summary, saved with the model (its lineage).
        calibration: Rows the price scale and interval are calibrated on; `val` when None.
        weights: Sample weights of `train` and `val`; None weighs every row 1.
        market: The rows' periods and the levels the targets are deflated by (the market
            index, `training.core.fitting.MarketRows`); None fits without an index.
    """

    train: pd.DataFrame
    val: pd.DataFrame
    dataset: DatasetSummary
    calibration: pd.DataFrame | None = None
    weights: tuple[np.ndarray, np.ndarray] | None = None
    market: MarketRows | None = None


@dataclass(frozen=True)
class Fitted:
    """A fitted, saved pipeline.

    Attributes:
        pipeline: The calibrated pipeline.
        history: Best round and validation curve.
        metrics: Its metrics on the calibration rows (`val` when none were given).
        fingerprint: The saved files' fingerprint, also the run's `PIPELINE_TAG`.
    """

    pipeline: PricePipeline
    history: TrainingHistory
    metrics: dict[str, float]
    fingerprint: str


def fit(
    run: TrackedRun,
    rows: TrainingRows,
    settings: TrainParams,
    lightgbm: dict[str, Any],
    out: Path,
) -> Fitted:
    """Fit, measure on the calibration rows, save to `out`, tag the run with the fingerprint.

    Args:
        run: The run the validation curve and the fingerprint are logged to.
        rows: The rows and weights.
        settings: params.yaml's `train` section.
        lightgbm: The booster parameters as plain data (`tuned_params.booster_params`).
        out: The pipeline folder (`paths.trained_pipeline` or `paths.retrain_pipeline`).
    """
    pipeline, history = fit_pipeline(
        rows.train,
        rows.val,
        settings,
        lightgbm,
        calibration=rows.calibration,
        weights=rows.weights,
        on_round=lambda step, l1: run.log_metrics({"val_l1_log": l1}, step=step),
        market=rows.market,
    )
    checked = rows.val if rows.calibration is None else rows.calibration
    # Each row at its own market's level: the fit's figure, not the served date's.
    log_price = pipeline.predict_relative_log(checked)
    if rows.market is not None and pipeline.market is not None:
        log_price = log_price + levels_of(pipeline.market).of(rows.market.calibration)
    metrics = regression_metrics(checked["price"].to_numpy(dtype=np.float64), np.exp(log_price))
    record = pipeline_files.TrainedModel(
        vocabulary=pipeline.vocabulary.to_json(),
        brand_models=pipeline.vocabulary.brand_models_json(),
        log_offset=pipeline.log_offset,
        interval=pipeline.interval,
        market=pipeline.market,
        best_iteration=history.best_iteration,
        lightgbm=lightgbm,
        val=metrics,
        dataset=rows.dataset,
    )
    fingerprint = pipeline_files.save(pipeline, out, record)
    run.set_tags({PIPELINE_TAG: fingerprint})
    return Fitted(pipeline, history, metrics, fingerprint)
