"""`car-train register`: the exported bundle → a new registry version, aliased `challenger`.

Only registration (`training.lifecycle.register`): `promote` then decides about `champion`,
and `publish` writes the champion's bundle where it is served.
"""

from shared_schema.bundle import read_verified
from training.config import Params
from training.io import files
from training.io.mlflow_service import MODEL_SHA_TAG, MlflowService
from training.lifecycle.register import register
from training.records import Registration


def run(params: Params, service: MlflowService) -> Registration:
    """Register the exported bundle's model under `registry.model_name` as the challenger.

    The version points at the MLflow run that exported these exact bytes (found by the
    bundle's sha256), so the registry serves what was checked at export.

    Returns:
        The registration (also written to `paths.registration`).

    Raises:
        PipelineError: No run exported the bundle.
        InvalidBundleError: The bundle fails `read_verified` (its message names the fault).
    """
    paths, name = params.paths, params.registry.model_name
    with files.all_or_nothing(paths.registration):
        manifest = read_verified(paths.exported_bundle).manifest
        run_id = service.find_run(MODEL_SHA_TAG, manifest.sha256, "car-train export")
        version = register(service, name, run_id, manifest, scored_on="test")
        registration = Registration(model_name=name, version=version, sha256=manifest.sha256)
        files.write_json(registration, paths.registration)
    return registration
