"""`car-train stage`: the registry's challenger into the serving folder's `challenger` pointer.

The server serving that folder holds it beside the champion (shadow scoring, a canary share);
`current` is never touched (`training.lifecycle.stage`, then `training.io.serving.stage`).
"""

import logging
from pathlib import Path

from shared_schema.serving_folder import Pointer
from training.config import Params
from training.io import registry
from training.io.mlflow_service import MlflowService
from training.lifecycle.stage import stage

log = logging.getLogger(__name__)


def run(
    params: Params,
    service: MlflowService,
    *,
    alias: str = registry.CHALLENGER,
    out: str | Path | None = None,
) -> Pointer:
    """Download the bundle the alias points to, verify it, and stage it in `out`.

    Returns:
        The pointer `challenger` holds now.

    Raises:
        PipelineError: The alias is unset, its run has no bundle, or it is the champion.
        InvalidBundleError: The bundle fails `read_verified`; the champion is untouched.
    """
    out = Path(out) if out else params.paths.serving_bundle
    staged = stage(service, params.registry.model_name, alias, out)
    pointer = staged.pointer
    log.info(
        "%s challenger: version %s%s",
        out,
        pointer.model_version,
        "" if staged.changed else " (as before)",
    )
    return pointer
