"""`car-train fetch-model`: the serving bundle of a registry alias (how a deployment gets it).

The pipeline's `publish` stage runs it for `champion` into `paths.serving_bundle`.
"""

import logging
from pathlib import Path

from shared_schema.bundle import Manifest
from training.config import Params
from training.io import registry, tracking

log = logging.getLogger(__name__)


def run(
    params: Params, *, alias: str = registry.CHAMPION, out: str | Path | None = None
) -> Manifest:
    """Download the bundle the alias points to, verify it, and write it to `out`.

    `out` absent or empty means `paths.serving_bundle` (what `car-serve` serves by default).

    Returns:
        The written manifest (`model_version` = the registry version).

    Raises:
        PipelineError: The alias is unset, or the bundle is missing or fails its sha256.
    """
    out = Path(out) if out else params.paths.serving_bundle
    client = tracking.client(params.registry)
    manifest = registry.publish(client, params.registry.model_name, alias, out)
    log.info(
        "wrote %s version %s (%s) to %s", manifest.model_name, manifest.model_version, alias, out
    )
    return manifest
