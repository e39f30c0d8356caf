"""`car-train export`: the trained pipeline → one ONNX graph + manifest in `paths.exported_bundle`.

That bundle is this run's candidate; `register`, `promote` and `publish` decide whether it is
served (`paths.serving_bundle` holds the champion). The step is the lifecycle's
(`training.lifecycle.export`), on the test split.
"""

import logging

from shared_schema.bundle import Manifest
from training.config import Params
from training.io import pipeline_files, splits
from training.io.mlflow_service import PIPELINE_TAG, MlflowService
from training.lifecycle.export import export, log_export

log = logging.getLogger(__name__)


def run(params: Params, service: MlflowService) -> Manifest:
    """Export the trained pipeline to `paths.exported_bundle` and log it to the training run.

    Returns:
        The manifest.
    """
    paths = params.paths
    pipeline, trained = pipeline_files.load(paths.trained_pipeline)
    test = splits.read(paths.splits, "test")
    # The run first: a model no run trained is not exported.
    run_id = service.find_run(
        PIPELINE_TAG, pipeline_files.fingerprint(paths.trained_pipeline), "car-train train"
    )
    manifest = export(
        pipeline,
        test,
        paths.exported_bundle,
        training_data_hash=trained.dataset.train.sha256,
        params=params,
    )
    with service.run(run_id=run_id) as tracked:
        log_export(tracked, paths.exported_bundle, manifest, test)
    log.info(
        "exported %s (sha256 %s…): test MAPE %.4f, parity max rel diff %.2e",
        paths.exported_bundle,
        manifest.sha256[:12],
        manifest.metrics["mape"],
        manifest.parity_max_rel_diff,
    )
    return manifest
