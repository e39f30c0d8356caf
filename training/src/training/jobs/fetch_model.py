"""`car-train fetch-model`: the serving bundle of a registry alias (how a deployment gets it).

The pipeline's `publish` stage runs it for `champion` into `paths.serving_bundle`.
"""

import logging
from pathlib import Path

import msgspec

from shared_schema.bundle import Manifest
from training.config import Params
from training.io import bundle, registry, tracking

log = logging.getLogger(__name__)


def run(params: Params, *, alias: str = registry.CHAMPION, out: str | Path) -> Manifest:
    """Download the bundle the alias points to, verify it, and write it to `out`.

    The manifest's `model_version` becomes the registry version (the export only knew a
    hash-based development version); the sha256 still covers `model.onnx`, byte for byte.

    Returns:
        The written manifest.

    Raises:
        PipelineError: The alias is unset, or the bundle is missing or fails its sha256.
    """
    client = tracking.client(params.registry)
    version = registry.require_alias(client, params.registry.model_name, alias)
    model_bytes, manifest = registry.fetch_bundle(version)
    manifest = msgspec.structs.replace(
        manifest, model_version=str(version.version), registry_alias=alias
    )
    bundle.write(Path(out), model_bytes, manifest)
    log.info("wrote %s version %s (%s) to %s", manifest.model_name, version.version, alias, out)
    return manifest
