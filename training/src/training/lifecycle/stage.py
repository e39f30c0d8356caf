"""Lifecycle, beside publish: the registry's `challenger` → the serving folder's `challenger`.

`car-train stage` runs it. The server then holds the challenger beside the champion and scores
it in shadow or answers a canary share with it (`inference`); `current` and `previous` are
never touched, so a bundle refused here leaves the champion serving as it was.
"""

from pathlib import Path

import msgspec

from training.io import registry, serving
from training.io.mlflow_service import MlflowService


def stage(service: MlflowService, model_name: str, alias: str, out: Path) -> serving.Publication:
    """Stage the bundle an alias points to as the serving folder's challenger, verified.

    As `publish`, the manifest's `model_version` becomes the registry version.

    Returns:
        The pointer `challenger` holds now, and whether anything changed.

    Raises:
        PipelineError: The alias is unset, its run has no bundle, or it is the champion already.
        InvalidBundleError: The bundle fails `read_verified` (its message names the fault).
    """
    version = registry.require_alias(service, model_name, alias)
    model_bytes, manifest = registry.fetch_bundle(service, version)
    manifest = msgspec.structs.replace(
        manifest, model_version=str(version.version), registry_alias=alias
    )
    return serving.stage(out, model_bytes, manifest)
