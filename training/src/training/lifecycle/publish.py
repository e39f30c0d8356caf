"""Lifecycle, last step: the bundle of a registry alias → the serving folder.

The `publish` stage and the drift DAG's `publish` task (`car-train fetch-model`) and
`car-train retrain` (on promotion) publish through here, into `training.io.serving.publish`
(the one publisher).
"""

from pathlib import Path

import msgspec

from training.io import registry, serving
from training.io.mlflow_service import MlflowService


def publish(service: MlflowService, model_name: str, alias: str, out: Path) -> serving.Publication:
    """Publish the bundle an alias points to into the serving folder `out`, verified.

    The manifest's `model_version` becomes the registry version (the export only knew a
    hash-based development version); the sha256 still covers `model.onnx`, byte for byte.
    Publishing what `current` already names changes nothing.

    Returns:
        What was published, and whether anything changed.

    Raises:
        PipelineError: The alias is unset, or its version's run has no bundle.
        InvalidBundleError: The bundle fails `read_verified` (its message names the fault).
    """
    version = registry.require_alias(service, model_name, alias)
    model_bytes, manifest = registry.fetch_bundle(service, version)
    manifest = msgspec.structs.replace(
        manifest, model_version=str(version.version), registry_alias=alias
    )
    return serving.publish(out, model_bytes, manifest)
