"""`car-train evaluate`: test-split metrics, error tables and plots → data/reports + MLflow."""

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shared_schema import FIELD_NAMES
from training.config import Params
from training.core.metrics import error_by_decile, error_by_group, regression_metrics
from training.core.model import PricePipeline
from training.io import files, pipeline_files, plots, tracking
from training.jobs import outputs, split

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
BRAND_TABLE = "error_by_brand.csv"
DECILE_TABLE = "error_by_decile.csv"
PLOTS_DIR = "plots"


def evaluate(pipeline: PricePipeline, test: pd.DataFrame, reports_dir: Path) -> dict[str, Any]:
    """Score `test` and write metrics, tables and plots into `reports_dir`.

    Returns:
        The metrics (also in `metrics.json`).
    """
    scored = test.assign(predicted=pipeline.predict_price(test))
    metrics = regression_metrics(
        scored["price"].to_numpy(np.float64), scored["predicted"].to_numpy(np.float64)
    )
    by_brand = error_by_group(scored, "brand", min_rows=20)
    by_decile = error_by_decile(scored)
    importance = pd.Series(
        pipeline.booster.feature_importance(importance_type="gain"), index=list(FIELD_NAMES)
    )
    files.write_json({"test": metrics}, reports_dir / METRICS_FILE)
    for table, name in ((by_brand, BRAND_TABLE), (by_decile, DECILE_TABLE)):
        with files.atomic_path(reports_dir / name) as tmp:
            table.round(6).to_csv(tmp, index=False)
    plot_dir = reports_dir / PLOTS_DIR
    plots.predicted_vs_actual(scored, plot_dir / "predicted_vs_actual.png")
    plots.residuals_by_brand(scored, plot_dir / "residuals_by_brand.png")
    plots.error_by_decile(by_decile, plot_dir / "error_by_decile.png")
    plots.feature_importance(importance, plot_dir / "feature_importance.png")
    return metrics


def run(params: Params) -> dict[str, Any]:
    """Evaluate the trained pipeline on the test split and log everything to its run.

    Returns:
        The test metrics.
    """
    import mlflow

    reports = Path(params.data.reports_dir)
    targets = [reports / METRICS_FILE, reports / BRAND_TABLE, reports / DECILE_TABLE]
    with outputs.all_or_nothing(*targets, reports / PLOTS_DIR):
        pipeline, info = pipeline_files.load(Path(params.train.model_dir))
        test = split.read_split(params, "test")
        metrics = evaluate(pipeline, test, reports)
        with tracking.run(params.registry, run_id=info["run_id"]):
            mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()})
            for path in targets:
                mlflow.log_artifact(str(path), artifact_path="reports")
            mlflow.log_artifacts(str(reports / PLOTS_DIR), artifact_path="reports/plots")
    log.info(
        "test split (%d rows): MAPE %.4f, median APE %.4f, R²(log) %.4f",
        len(test),
        metrics["mape"],
        metrics["median_ape"],
        metrics["r2_log"],
    )
    return metrics
