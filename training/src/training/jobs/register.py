"""`car-train register`: the exported bundle → a new registry version, aliased `challenger`.

Only registration: `promote` then decides about `champion`, and `publish` writes the
champion's bundle where it is served.
"""

import logging

from shared_schema.bundle import read_verified
from training.config import Params
from training.io import files, registry, tracking
from training.records import Registration

log = logging.getLogger(__name__)


def run(params: Params) -> Registration:
    """Register the exported bundle's model under `registry.model_name` as the challenger.

    The version points at the MLflow run that exported these exact bytes (found by the
    bundle's sha256), so the registry serves what was checked at export.

    Returns:
        The registration (also written to `paths.registration`).

    Raises:
        PipelineError: The bundle is missing or corrupt, or no run exported it.
    """
    paths, name = params.paths, params.registry.model_name
    with files.all_or_nothing(paths.registration):
        manifest = read_verified(paths.exported_bundle).manifest
        run_id = tracking.find_run(
            params.registry, tracking.MODEL_SHA_TAG, manifest.sha256, "car-train export"
        )
        client = tracking.client(params.registry)
        version = registry.register(
            client,
            name,
            run_id,
            tags={
                "sha256": manifest.sha256,
                "test_mape": f"{manifest.metrics['mape']:.6f}",
                "training_data_hash": manifest.training_data_hash,
                "schema_version": manifest.schema_version,
            },
        )
        client.set_registered_model_alias(name, registry.CHALLENGER, version)
        registration = Registration(model_name=name, version=version, sha256=manifest.sha256)
        files.write_json(registration, paths.registration)
    log.info("registered %s version %s as %s", name, version, registry.CHALLENGER)
    return registration
