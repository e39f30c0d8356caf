"""Lifecycle, step 3: an exported bundle's run → a new registry version, aliased `challenger`.

`version_tags` is the one builder of a version's tags, for the pipeline and the retrain alike.
"""

import logging

from shared_schema.bundle import Manifest
from training.io import registry
from training.io.mlflow_service import MlflowService

log = logging.getLogger(__name__)


def version_tags(
    manifest: Manifest, scored_on: str, trained_through: str | None = None
) -> dict[str, str]:
    """A registry version's tags: its bundle, the rows its MAPE was measured on, its lineage.

    Args:
        manifest: The exported bundle's manifest (its metrics are the export's check rows').
        scored_on: The name of those rows: `test` (the pipeline) or `holdout` (the retrain),
            the tag `<scored_on>_mape`.
        trained_through: The newest row a retrained model trained on (`core.retrain.slice_key`),
            as `registry.TRAINED_THROUGH_TAG`; None for the pipeline's 2020-only models.
    """
    tags = {
        "sha256": manifest.sha256,
        f"{scored_on}_mape": f"{manifest.metrics['mape']:.6f}",
        "training_data_hash": manifest.training_data_hash,
        "schema_version": manifest.schema_version,
    }
    if trained_through is not None:
        tags[registry.TRAINED_THROUGH_TAG] = trained_through
    return tags


def register(
    service: MlflowService,
    model_name: str,
    run_id: str,
    manifest: Manifest,
    *,
    scored_on: str,
    trained_through: str | None = None,
) -> str:
    """Register the bundle `run_id` logged as a new version of `model_name`, the challenger.

    Args:
        service: The MLflow store.
        model_name: `registry.model_name`.
        run_id: The run that logged the bundle (`export.log_export`).
        manifest: Its manifest.
        scored_on: See `version_tags`.
        trained_through: See `version_tags`.

    Returns:
        The new version.

    Raises:
        PipelineError: The run has no exported model.
    """
    tags = version_tags(manifest, scored_on, trained_through)
    version = registry.register(service, model_name, run_id, tags)
    service.client.set_registered_model_alias(model_name, registry.CHALLENGER, version)
    log.info("registered %s version %s as %s", model_name, version, registry.CHALLENGER)
    return version
