"""`car-train export`: the trained pipeline → one ONNX graph + manifest in `paths.exported_bundle`.

That bundle is this run's candidate; `register`, `promote` and `publish` decide whether it is
served (`paths.serving_bundle` holds the champion). The graph and its parity check are
`training.io.exporter`'s.
"""

import logging

from shared_schema.bundle import Manifest
from training.config import Params
from training.io import onnx_scoring, pipeline_files, registry, splits, tracking
from training.io.exporter import export_bundle

log = logging.getLogger(__name__)


def run(params: Params) -> Manifest:
    """Export the trained pipeline to `paths.exported_bundle` and log it to the training run.

    Returns:
        The manifest.
    """
    import mlflow

    paths = params.paths
    pipeline, trained = pipeline_files.load(paths.trained_pipeline)
    test = splits.read(paths.splits, "test")
    # The run first: a model no run trained is not exported.
    run_id = tracking.find_run(
        params.registry,
        tracking.PIPELINE_TAG,
        pipeline_files.fingerprint(paths.trained_pipeline),
        "car-train train",
    )
    manifest = export_bundle(
        pipeline,
        test,
        paths.exported_bundle,
        training_data_hash=trained.dataset.train.sha256,
        model_name=params.registry.model_name,
        parity_tolerance=params.export.parity_tolerance,
        opset=params.export.opset,
    )
    with tracking.run(params.registry, run_id=run_id):
        mlflow.log_metric("parity_max_rel_diff", manifest.parity_max_rel_diff)
        mlflow.set_tag(tracking.MODEL_SHA_TAG, manifest.sha256)
        example = onnx_scoring.frame_feeds(test.head(3), manifest.inputs)
        registry.log_bundle(paths.exported_bundle, example)
    log.info(
        "exported %s (sha256 %s…): test MAPE %.4f, parity max rel diff %.2e",
        paths.exported_bundle,
        manifest.sha256[:12],
        manifest.metrics["mape"],
        manifest.parity_max_rel_diff,
    )
    return manifest
