"""Lifecycle, the way back: `current` → `previous` in the serving folder, and the alias with it.

`car-train rollback` runs it, by hand or from the rollout watcher (`training.jobs.rollback`).
"""

import logging
from pathlib import Path

from training.io import registry, serving
from training.io.mlflow_service import MlflowService

log = logging.getLogger(__name__)


def rollback(
    service: MlflowService, model_name: str, out: Path, reason: str
) -> serving.Publication:
    """Serve `previous` again and move the registry's `champion` alias to its version.

    The pointer moves first (what pods serve is what matters); the alias follows, so the next
    `fetch-model` publishes the same version again. The reason is logged and set as a tag on
    the version rolled back to.

    Raises:
        PipelineError: No `previous` pointer, or its bundle was collected or is not servable;
            nothing changed then.
    """
    target = serving.previous_pointer(out)
    if target is not None:
        # A version the registry does not know is refused before anything moves.
        registry.require_version(service, model_name, target.model_version)
    rolled = serving.rollback(out)
    version = rolled.pointer.model_version
    client = service.client
    client.set_registered_model_alias(model_name, registry.CHAMPION, version)
    client.set_model_version_tag(model_name, version, "rollback_reason", reason)
    log.warning("rolled %s back to version %s: %s", out, version, reason)
    return rolled
