"""The whole fit of a price pipeline: vocabulary, booster, price scale, interval. Pure.

`car-train train` (the 2020 pipeline) and `car-train retrain` (2020 + new market rows) fit
their models here, so the two can differ only in the rows and weights they pass.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from training.config import TrainParams
from training.core.encoding import fit_vocabulary
from training.core.intervals import fit_intervals
from training.core.market_index import (
    Levels,
    market_index,
    period_levels,
    period_of,
    window_mask,
)
from training.core.model import PricePipeline, TrainingHistory, calibrated, train_booster


@dataclass(frozen=True)
class MarketRows:
    """When each row's price was asked, and the levels its target is deflated by.

    Attributes:
        train: Each training row's period (`training.core.market_index.period_of`).
        val: Each validation row's period.
        calibration: Each calibration row's period (`val`'s when the fit has no own rows).
        deflate_by: The levels the booster's targets are deflated by (estimated with another
            forest, e.g. the champion's, on rows this fit may train on); every period of
            `train` and `val` needs one.
        served: Which calibration rows form the newest window whose level the graph serves.
        market_date: The date that level prices for (the newest labelled row's day).
    """

    train: pd.Series
    val: pd.Series
    calibration: pd.Series
    deflate_by: Levels
    served: np.ndarray
    market_date: str


def market_rows(
    times: tuple[pd.Series, pd.Series, pd.Series], deflate_by: Levels, window_days: float
) -> MarketRows:
    """The `MarketRows` of a fit from its rows' event times (train, val, calibration).

    The market date is the newest row's day; the served window is the calibration rows of the
    `window_days` before the newest row.
    """
    train, val, calibration = (pd.to_datetime(t, utc=True).reset_index(drop=True) for t in times)
    newest = max(t.max() for t in (train, val, calibration))
    served = window_mask(calibration, window_days, newest)
    return MarketRows(
        train=period_of(train),
        val=period_of(val),
        calibration=period_of(calibration),
        deflate_by=deflate_by,
        served=served,
        market_date=str(period_of(pd.Series([newest])).iloc[0]),
    )


def fit_pipeline(
    train: pd.DataFrame,
    val: pd.DataFrame,
    settings: TrainParams,
    lightgbm_params: Mapping[str, Any],
    *,
    calibration: pd.DataFrame | None = None,
    weights: tuple[np.ndarray, np.ndarray] | None = None,
    on_round: Callable[[int, float], object] | None = None,
    market: MarketRows | None = None,
) -> tuple[PricePipeline, TrainingHistory]:
    """Fit the pipeline on `train`, stop on `val`, then calibrate scale and interval.

    With `market`, the booster learns index-deflated log prices; the index is then estimated
    again with the fitted booster on the rows it did not train on (`val` and the calibration
    rows: one back-fitting step of the time-dummy hedonic model), the served level on the
    newest window of the calibration rows, and the scale and the interval are calibrated on
    the calibration rows at their own periods' levels.

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
        market: The rows' periods and the levels to deflate by; None fits without an index.

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
        levels=None
        if market is None
        else (market.deflate_by.of(market.train), market.deflate_by.of(market.val)),
    )
    rows = val if calibration is None else calibration
    levels: np.ndarray | float = 0.0
    if market is not None:
        pipeline, levels = _indexed(pipeline, val, rows, market)
    if settings.calibrate_scale:
        pipeline = calibrated(pipeline, rows, levels)
    # The interval is calibrated after the scale it wraps is final.
    interval = fit_intervals(
        pipeline.predict_relative_log(rows),
        rows["price"].to_numpy(dtype=np.float64),
        nominal=settings.interval.nominal,
        bins=settings.interval.bins,
        level=levels,
    )
    return replace(pipeline, interval=interval), history


def _indexed(
    pipeline: PricePipeline, val: pd.DataFrame, calibration: pd.DataFrame, market: MarketRows
) -> tuple[PricePipeline, np.ndarray]:
    """The pipeline with its index re-estimated on held-out rows; each calibration row's level.

    The index comes from `val` and the calibration rows (each listing once), the served level
    from the calibration rows of the newest window.
    """

    def residual(frame: pd.DataFrame) -> np.ndarray:
        log_price = np.log(frame["price"].to_numpy(np.float64))
        return np.asarray(log_price - pipeline.predict_relative_log(frame))

    calibration_residual = residual(calibration)
    ids = pd.concat([val["listing_id"], calibration["listing_id"]], ignore_index=True)
    periods = pd.concat([market.val, market.calibration], ignore_index=True)
    once = ~ids.duplicated().to_numpy()
    index = period_levels(
        np.concatenate([residual(val), calibration_residual])[once],
        periods[once].reset_index(drop=True),
        market.deflate_by,
    )
    served = calibration_residual[market.served]
    record = market_index(
        index,
        market_date=market.market_date,
        served_level=float(np.median(served)),
        served_rows=len(served),
        window_from=min(market.calibration.reset_index(drop=True)[market.served]),
    )
    return replace(pipeline, market=record), index.of(market.calibration.reset_index(drop=True))
