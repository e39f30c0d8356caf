"""Market levels measured with a registered bundle's graph: the retrain's and refresh's input.

The arithmetic is `training.core.market_index`'s; this scores the rows with a bundle (the
champion's) and hands over residuals on the bundle's own relative scale.
"""

from typing import Any

import numpy as np
import pandas as pd

from shared_schema.bundle import Manifest
from training.core.market_index import Array, Levels, period_levels
from training.io import onnx_scoring, registry
from training.io.mlflow_service import MlflowService


def relative_residual(model_bytes: bytes, manifest: Manifest, frame: pd.DataFrame) -> Array:
    """log(price) minus the bundle's market-relative log price, per row.

    The bundle prices at its served level; subtracting that level gives what the forest says
    relative to the market, so the median over a window is that window's level on the
    bundle's scale (level 0 for a bundle without an index).
    """
    served = 0.0 if manifest.market is None else manifest.market.served_level
    price = onnx_scoring.price_at(model_bytes, manifest, frame)
    log_price = np.log(frame["price"].to_numpy(np.float64))
    return np.asarray(log_price - (np.log(price) - served), dtype=np.float64)


def champion_levels(
    service: MlflowService, champion: Any | None, frame: pd.DataFrame, periods: pd.Series
) -> Levels:
    """The levels by period the champion's forest measures on `frame`: what a retrain deflates by.

    Args:
        service: The MLflow store.
        champion: The champion's registry version; None gives level 0 everywhere.
        frame: Labelled rows (raw fields + `price`), each listing once.
        periods: Each row's period.
    """
    if champion is None:
        return Levels.flat(periods)
    model_bytes, manifest = registry.fetch_bundle(service, champion)
    return period_levels(relative_residual(model_bytes, manifest, frame), periods)
