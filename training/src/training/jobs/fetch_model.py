"""`car-train fetch-model`: publish the bundle of a registry alias (how a deployment gets it).

The pipeline's `publish` stage and the drift DAG's `publish` task run it for `champion` into
`paths.serving_bundle`, a serving folder (`shared_schema.serving_folder`): the bundle in its own
directory, then the `current` pointer (`training.lifecycle.publish`, then `training.io.serving`,
the one publisher).
"""

import logging
from pathlib import Path

from shared_schema.serving_folder import Pointer
from training.config import Params
from training.io import registry
from training.io.mlflow_service import MlflowService
from training.lifecycle.publish import publish

log = logging.getLogger(__name__)


def run(
    params: Params,
    service: MlflowService,
    *,
    alias: str = registry.CHAMPION,
    out: str | Path | None = None,
) -> Pointer:
    """Download the bundle the alias points to, verify it, and publish it into `out`.

    `out` absent or empty means `paths.serving_bundle` (what `car-serve` serves by default).

    Returns:
        The pointer `current` holds now (`model_version` = the registry version).

    Raises:
        PipelineError: The alias is unset, or its version's run has no bundle.
        InvalidBundleError: The bundle fails `read_verified` (its message names the fault).
    """
    out = Path(out) if out else params.paths.serving_bundle
    name = params.registry.model_name
    published = publish(service, name, alias, out)
    pointer = published.pointer
    if published.changed:
        log.info("published %s version %s (%s) in %s", name, pointer.model_version, alias, out)
    else:
        log.info(
            "%s already serves %s version %s (%s): nothing changed",
            out,
            name,
            pointer.model_version,
            alias,
        )
    return pointer
