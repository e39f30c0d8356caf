"""The whole fit of a price pipeline: vocabulary, booster, price scale, interval. Pure.

`car-train train` (the 2020 pipeline) and `car-train retrain` (2020 + new market rows) fit
their models here, so the two can differ only in the rows and weights they pass.
"""

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from training.config import TrainParams
from training.core.encoding import fit_vocabulary
from training.core.intervals import fit_intervals
from training.core.model import PricePipeline, TrainingHistory, calibrated, train_booster


def fit_pipeline(
    train: pd.DataFrame,
    val: pd.DataFrame,
    settings: TrainParams,
    lightgbm_params: Mapping[str, Any],
    *,
    calibration: pd.DataFrame | None = None,
    weights: tuple[np.ndarray, np.ndarray] | None = None,
    on_round: Callable[[int, float], object] | None = None,
) -> tuple[PricePipeline, TrainingHistory]:
    """Fit the pipeline on `train`, stop on `val`, then calibrate scale and interval.

    Args:
        train: Training rows: raw fields and `price`.
        val: Early-stopping rows: raw fields and `price`.
        settings: params.yaml's `train` section (rounds, vocabulary, scale, interval).
        lightgbm_params: The booster parameters (`training.io.tuned_params.booster_params`).
        calibration: Rows the price scale and the interval are calibrated on; `val` when None.
            The booster never trains on them (at most they stop it), so the interval's
            conformal guarantee holds for rows like them.
        weights: Sample weights of `train` and `val` rows; None weighs every row 1.
        on_round: Called with (round, validation L1) every `settings.log_every` rounds.

    Returns:
        The calibrated pipeline (with its interval) and the training history.

    Raises:
        ValueError: Too few calibration rows for the interval.
    """
    vocabulary = fit_vocabulary(train, settings.min_category_count)
    pipeline, history = train_booster(
        train,
        val,
        vocabulary,
        lightgbm_params,
        num_boost_round=settings.num_boost_round,
        early_stopping_rounds=settings.early_stopping_rounds,
        log_every=settings.log_every,
        on_round=on_round,
        weights=weights,
    )
    rows = val if calibration is None else calibration
    if settings.calibrate_scale:
        pipeline = calibrated(pipeline, rows)
    # The interval is calibrated after the scale it wraps is final.
    interval = fit_intervals(
        pipeline.predict_log(rows),
        rows["price"].to_numpy(dtype=np.float64),
        nominal=settings.interval.nominal,
        bins=settings.interval.bins,
    )
    return replace(pipeline, interval=interval), history
