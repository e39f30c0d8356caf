"""`evaluate` writes its metrics, tables and PNG plots."""

import json
from typing import Any

import pandas as pd

from training.core.model import PricePipeline
from training.jobs.evaluate import evaluate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_evaluate_writes_metrics_tables_and_plots(
    make_params: Any, pipeline: PricePipeline, cars: dict[str, pd.DataFrame]
) -> None:
    """The metrics file has every metric; both tables and all four PNG plots exist."""
    paths = make_params().paths
    metrics = evaluate(pipeline, cars["test"], paths).test
    written = json.loads(paths.test_metrics.read_text(encoding="utf-8"))["test"]
    assert written == metrics
    for key in ("mape", "median_ape", "rmse_rub", "mae_rub", "rmse_log", "mae_log", "r2_log"):
        assert key in metrics
    assert 0 < metrics["mape"] < 0.5
    assert metrics["r2_log"] > 0.5
    deciles = pd.read_csv(paths.error_by_decile)
    assert deciles["decile"].tolist() == list(range(1, 11))
    assert deciles["rows"].sum() == len(cars["test"])
    brands = pd.read_csv(paths.error_by_brand)
    assert {"brand", "rows", "mape", "median_ape", "bias_log"} <= set(brands.columns)
    plots = sorted(p.name for p in paths.plots.iterdir())
    assert plots == [
        "error_by_decile.png",
        "feature_importance.png",
        "predicted_vs_actual.png",
        "residuals_by_brand.png",
    ]
    for name in plots:
        assert (paths.plots / name).read_bytes().startswith(PNG_MAGIC)
