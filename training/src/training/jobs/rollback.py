"""`car-train rollback`: serve the `previous` bundle again and move `champion` back to it.

Run by hand or by the rollout watcher; `--reason` is required so every rollback says why.
"""

from pathlib import Path

from shared_schema.serving_folder import Pointer
from training.config import Params
from training.io.mlflow_service import MlflowService
from training.lifecycle.rollback import rollback


def run(
    params: Params, service: MlflowService, *, reason: str, out: str | Path | None = None
) -> Pointer:
    """Roll the serving folder `out` (default `paths.serving_bundle`) and the alias back.

    Raises:
        PipelineError: No previous version, or its bundle is gone (collected); nothing changed.
    """
    out = Path(out) if out else params.paths.serving_bundle
    return rollback(service, params.registry.model_name, out, reason).pointer
