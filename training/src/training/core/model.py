"""The price model: LightGBM on log(price) behind the raw-field encoding. Pure computation."""

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from shared_schema.market import MarketIndex
from training.core.encoding import (
    Vocabulary,
    categorical_features,
    feature_matrix,
    monotone_constraints,
)
from training.core.intervals import IntervalTable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PricePipeline:
    """Encoding + booster + a constant log offset: raw fields in, price in RUB out.

    Attributes:
        booster: The LightGBM booster, trained on log(price).
        vocabulary: Category codes (see `training.core.encoding`).
        log_offset: Added to the booster's output before exp(): the training median of
            log(price) the booster was centred on, plus a calibration fitted on validation
            rows (the MAPE-optimal price lies below the median the booster estimates).
        interval: The calibrated price interval around the log price; None for none.
        market: The market index the booster's targets were deflated by, and the level
            served (`training.core.market_index`); None prices at level 0.
    """

    booster: lgb.Booster
    vocabulary: Vocabulary
    log_offset: float = 0.0
    interval: IntervalTable | None = None
    market: MarketIndex | None = None

    @property
    def served_level(self) -> float:
        """The market's log level the pipeline prices at (0 without an index)."""
        return 0.0 if self.market is None else self.market.served_level

    def predict_relative_log(self, frame: pd.DataFrame) -> np.ndarray:
        """log(price) relative to the market for each row of raw fields (float64)."""
        raw = self.booster.predict(feature_matrix(frame, self.vocabulary))
        return np.asarray(raw, dtype=np.float64) + self.log_offset

    def predict_log(self, frame: pd.DataFrame) -> np.ndarray:
        """log(price) at the served market level for each row of raw fields (float64)."""
        return self.predict_relative_log(frame) + self.served_level

    def predict_price(self, frame: pd.DataFrame) -> np.ndarray:
        """Price in RUB for each row of raw fields (float64)."""
        return np.exp(self.predict_log(frame))

    def predict_bounds(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper interval prices in RUB for each row (float64).

        Raises:
            ValueError: The pipeline has no calibrated interval.
        """
        if self.interval is None:
            raise ValueError("this pipeline has no calibrated interval")
        return self.interval.bounds(self.predict_relative_log(frame), self.served_level)


@dataclass
class TrainingHistory:
    """What training did: best round and the validation curve."""

    best_iteration: int = 0
    base_log_price: float = 0.0
    val_l1: list[float] = field(default_factory=list)


def booster_params(lightgbm_params: Mapping[str, Any]) -> dict[str, Any]:
    """LightGBM parameters with the fixed parts of the model added (constraints, metric)."""
    params = dict(lightgbm_params)
    params.update(
        {
            "metric": "l1",
            "monotone_constraints": monotone_constraints(),
            # "intermediate" constrains less than the default "basic"; "advanced" was measured
            # to break monotonicity with the huber objective (tests/training/io/test_onnx_graph.py).
            "monotone_constraints_method": "intermediate",
            "verbosity": -1,
            "deterministic": True,
            "force_row_wise": True,
        }
    )
    return params


def train_booster(
    train: pd.DataFrame,
    val: pd.DataFrame,
    vocabulary: Vocabulary,
    lightgbm_params: Mapping[str, Any],
    *,
    num_boost_round: int,
    early_stopping_rounds: int,
    log_every: int = 100,
    on_round: Callable[[int, float], object] | None = None,
    categorical_splits: bool = True,
    weights: tuple[np.ndarray, np.ndarray] | None = None,
    levels: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[PricePipeline, TrainingHistory]:
    """Fit the booster on log(price) with early stopping on the validation rows.

    The booster learns log(price) minus the training median: LightGBM's huber objective
    starts from 0 and moves at most `learning_rate * alpha` per round, so without centring it
    would spend its first hundreds of rounds walking up to log(price) ≈ 13.

    Args:
        train: Training rows: raw fields and `price`.
        val: Validation rows: raw fields and `price`.
        vocabulary: Category codes fitted on `train`.
        lightgbm_params: Booster parameters (see `booster_params`).
        num_boost_round: Upper bound on boosting rounds.
        early_stopping_rounds: Stop after this many rounds without validation improvement.
        log_every: Log the validation L1 of log price every this many rounds.
        on_round: Called with (round, validation L1) every `log_every` rounds (e.g. MLflow).
        categorical_splits: Split categorical fields as sets (LightGBM's categorical splits);
            False splits their codes as ordered numbers (the frontier study compares both).
        weights: Sample weights of the training and the validation rows (early stopping then
            follows the weighted validation loss); None weighs every row 1.
        levels: The market log level of each training and validation row: the booster learns
            log(price) - level, the car's worth relative to its market; None: no deflation.

    Returns:
        The pipeline (booster truncated to its best round, log offset = the training median)
        and the training history.
    """
    train_level, val_level = (0.0, 0.0) if levels is None else levels
    train_target = np.log(train["price"].to_numpy(dtype=np.float64)) - train_level
    val_target = np.log(val["price"].to_numpy(dtype=np.float64)) - val_level
    base = float(np.median(train_target))
    history = TrainingHistory(base_log_price=base)

    def _progress(env: lgb.callback.CallbackEnv) -> None:
        results = env.evaluation_result_list or []
        l1 = float(results[0][2])
        history.val_l1.append(l1)
        round_ = env.iteration + 1
        if round_ % log_every == 0:
            log.info("round %d: validation L1(log price) %.5f", round_, l1)
            if on_round is not None:
                on_round(round_, l1)

    categorical = categorical_features() if categorical_splits else []
    train_set = lgb.Dataset(
        feature_matrix(train, vocabulary),
        train_target - base,
        categorical_feature=categorical,
        weight=None if weights is None else weights[0],
        free_raw_data=True,
    )
    val_set = lgb.Dataset(
        feature_matrix(val, vocabulary),
        val_target - base,
        reference=train_set,
        categorical_feature=categorical,
        weight=None if weights is None else weights[1],
    )
    booster = lgb.train(
        booster_params(lightgbm_params),
        train_set,
        num_boost_round=num_boost_round,
        valid_sets=[val_set],
        valid_names=["val"],
        callbacks=[_progress, lgb.early_stopping(early_stopping_rounds, verbose=False)],
    )
    history.best_iteration = int(booster.best_iteration or booster.current_iteration())
    # Keep only the best rounds, so predict(), the saved model and the ONNX graph agree.
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=history.best_iteration))
    log.info("best round %d of %d", history.best_iteration, len(history.val_l1))
    return PricePipeline(booster, vocabulary, base), history


def fit_log_offset(log_pred: np.ndarray, price: np.ndarray) -> float:
    """The constant that, added to these log predictions, minimises their MAPE.

    A grid over ±15 % of price in 0.1 % steps: MAPE is piecewise linear in the scale, so a
    fine grid is as good as an exact search and cannot overshoot.
    """
    offsets = np.log(np.linspace(0.85, 1.15, 301))
    pred = np.exp(log_pred)
    mape = [float(np.mean(np.abs(pred * np.exp(o) - price) / price)) for o in offsets]
    return float(offsets[int(np.argmin(mape))])


def calibrated(
    pipeline: PricePipeline, val: pd.DataFrame, levels: np.ndarray | float = 0.0
) -> PricePipeline:
    """The pipeline with its log offset shifted to minimise MAPE on `val` at `levels`.

    Args:
        pipeline: The pipeline to calibrate.
        val: Rows of raw fields and `price`.
        levels: Each row's market log level (the market it was asked in); 0 without an index.
    """
    price = val["price"].to_numpy(dtype=np.float64)
    shift = fit_log_offset(pipeline.predict_relative_log(val) + levels, price)
    return replace(pipeline, log_offset=pipeline.log_offset + shift)
