"""`evaluate` writes its metrics, tables and PNG plots."""

import json
from pathlib import Path

import pandas as pd

from training.core.model import PricePipeline
from training.jobs.evaluate import evaluate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_evaluate_writes_metrics_tables_and_plots(
    tmp_path: Path, pipeline: PricePipeline, cars: dict[str, pd.DataFrame]
) -> None:
    """metrics.json has every metric; both tables and all four PNG plots exist."""
    metrics = evaluate(pipeline, cars["test"], tmp_path)
    written = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))["test"]
    assert written == metrics
    for key in ("mape", "median_ape", "rmse_rub", "mae_rub", "rmse_log", "mae_log", "r2_log"):
        assert key in metrics
    assert 0 < metrics["mape"] < 0.5
    assert metrics["r2_log"] > 0.5
    deciles = pd.read_csv(tmp_path / "error_by_decile.csv")
    assert deciles["decile"].tolist() == list(range(1, 11))
    assert deciles["rows"].sum() == len(cars["test"])
    brands = pd.read_csv(tmp_path / "error_by_brand.csv")
    assert {"brand", "rows", "mape", "median_ape", "bias_log"} <= set(brands.columns)
    plots = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert plots == [
        "error_by_decile.png",
        "feature_importance.png",
        "predicted_vs_actual.png",
        "residuals_by_brand.png",
    ]
    for name in plots:
        assert (tmp_path / "plots" / name).read_bytes().startswith(PNG_MAGIC)
