"""`car-train evaluate`: test-split metrics, error tables and plots → reports + MLflow."""

import logging

import numpy as np
import pandas as pd

from shared_schema import FIELD_NAMES
from training.config import Params, PathParams
from training.core.intervals import coverage, mean_relative_width
from training.core.metrics import error_by_decile, error_by_group, regression_metrics
from training.core.model import PricePipeline
from training.io import files, pipeline_files, plots, splits
from training.io.mlflow_service import PIPELINE_TAG, MlflowService
from training.records import EvaluationReport

log = logging.getLogger(__name__)


def evaluate(pipeline: PricePipeline, test: pd.DataFrame, paths: PathParams) -> EvaluationReport:
    """Score `test`; write the metrics, the two error tables and the plots where `paths` say.

    Returns:
        The metrics (also in `paths.test_metrics`).
    """
    scored = test.assign(predicted=pipeline.predict_price(test))
    metrics = regression_metrics(
        scored["price"].to_numpy(np.float64), scored["predicted"].to_numpy(np.float64)
    )
    if pipeline.interval is not None:
        lower, upper = pipeline.predict_bounds(test)
        scored = scored.assign(lower=lower, upper=upper)
        price = scored["price"].to_numpy(np.float64)
        metrics["interval_nominal"] = pipeline.interval.nominal
        metrics["interval_coverage"] = coverage(price, lower, upper)
        metrics["interval_mean_relative_width"] = mean_relative_width(
            scored["predicted"].to_numpy(np.float64), lower, upper
        )
    by_decile = error_by_decile(scored)
    importance = pd.Series(
        pipeline.booster.feature_importance(importance_type="gain"), index=list(FIELD_NAMES)
    )
    report = EvaluationReport(test=metrics)
    files.write_json(report, paths.test_metrics)
    files.write_csv(error_by_group(scored, "brand", min_rows=20), paths.error_by_brand)
    files.write_csv(by_decile, paths.error_by_decile)
    plots.predicted_vs_actual(scored, paths.plots / "predicted_vs_actual.png")
    plots.residuals_by_brand(scored, paths.plots / "residuals_by_brand.png")
    plots.error_by_decile(by_decile, paths.plots / "error_by_decile.png")
    plots.feature_importance(importance, paths.plots / "feature_importance.png")
    return report


def run(params: Params, service: MlflowService) -> EvaluationReport:
    """Evaluate the trained pipeline on the test split and log everything to its run.

    Returns:
        The test metrics.
    """
    paths = params.paths
    tables = [paths.test_metrics, paths.error_by_brand, paths.error_by_decile]
    with files.all_or_nothing(*tables, paths.plots):
        pipeline, _ = pipeline_files.load(paths.trained_pipeline)
        test = splits.read(paths.splits, "test")
        report = evaluate(pipeline, test, paths)
        run_id = service.find_run(
            PIPELINE_TAG, pipeline_files.fingerprint(paths.trained_pipeline), "car-train train"
        )
        with service.run(run_id=run_id) as tracked:
            tracked.log_metrics({f"test_{k}": v for k, v in report.test.items()})
            for path in tables:
                tracked.log_artifacts(path, "reports")
            tracked.log_artifacts(paths.plots, "reports/plots")
    log.info(
        "test split (%d rows): MAPE %.4f, median APE %.4f, R²(log) %.4f",
        len(test),
        report.test["mape"],
        report.test["median_ape"],
        report.test["r2_log"],
    )
    return report
