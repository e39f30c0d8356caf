"""Lifecycle, the way back: `current` → `previous` in the serving folder, and the alias with it.

`car-train rollback` runs it, by hand or from the rollout watcher (`training.jobs.rollback`).
"""

import logging
from pathlib import Path
from typing import Final

from shared_schema.serving_folder import CURRENT, read_pointer
from training.errors import PipelineError
from training.io import registry, serving
from training.io.mlflow_service import MlflowService

log = logging.getLogger(__name__)

#: The tag on a version rolled back (it served and was judged bad): promote-live refuses it.
ROLLBACK_REASON_TAG: Final = "rollback_reason"
#: The tag on a challenger `car-train watch` withdrew on a breach: promote-live refuses it.
WITHDRAWN_REASON_TAG: Final = "withdrawn_reason"


def rollback(
    service: MlflowService, model_name: str, out: Path, reason: str, expected: str | None = None
) -> serving.Publication:
    """Serve `previous` again and move the registry's `champion` alias to its version.

    The pointer moves first (what pods serve is what matters); the alias follows, so the next
    `fetch-model` publishes the same version again. The reason is logged and set as the
    `rollback_reason` tag on the version rolled back (the bad one). `expected` is the version
    the caller judged (default: the one `current` names as this starts); the pointer moves only
    while `current` still names it (`serving.rollback` checks under the folder's lock).

    Raises:
        PipelineError: `current` no longer names `expected`, no `previous` pointer, or its
            bundle was collected or is not servable; nothing changed then.
    """
    if expected is None:
        try:
            served = read_pointer(out, CURRENT)
        except ValueError as error:  # PointerError: not guessed at
            raise PipelineError(str(error)) from error
        if served is None:
            raise PipelineError(f"{out}: nothing is served (no {CURRENT} pointer)")
        expected = served.model_version
    target = serving.previous_pointer(out)
    if target is not None:
        # A version the registry does not know is refused before anything moves.
        registry.require_version(service, model_name, target.model_version)
    rolled = serving.rollback(out, expected)
    version = rolled.pointer.model_version
    client = service.client
    client.set_registered_model_alias(model_name, registry.CHAMPION, version)
    client.set_model_version_tag(model_name, expected, ROLLBACK_REASON_TAG, reason)
    log.warning("rolled %s back from version %s to %s: %s", out, expected, version, reason)
    return rolled
