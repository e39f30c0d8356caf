"""`car-train register`: the exported bundle → a new `car-price` version, `challenger`, gate.

The new version gets the `challenger` alias; `promote` then decides about `champion`, and the
champion's bundle (the new model or the one it failed to beat) is written to
`registry.serving_dir`, the bundle that is served.
"""

import logging
from pathlib import Path
from typing import Any

from training.config import Params
from training.errors import PipelineError
from training.io import bundle, pipeline_files, registry, tracking
from training.jobs import fetch_model, promote

log = logging.getLogger(__name__)


def run(params: Params) -> dict[str, Any]:
    """Register the run's exported model, alias it `challenger`, gate it, write the champion.

    Returns:
        The promotion record.

    Raises:
        PipelineError: data/model does not hold the bundle this run exported.
    """
    _, info = pipeline_files.load(Path(params.train.model_dir))
    run_id = info["run_id"]
    _, manifest = bundle.read(Path(params.export.model_dir))
    client = tracking.client(params.registry)
    logged_sha = tracking.require_run(run_id).data.tags.get("model_sha256")
    if logged_sha != manifest.sha256:
        raise PipelineError(
            f"{params.export.model_dir}: bundle sha256 {manifest.sha256[:12]}… is not the "
            f"model exported by run {run_id} ({str(logged_sha)[:12]}…); run `car-train export`"
        )
    version = registry.register(
        client,
        params.registry.model_name,
        run_id,
        tags={
            "sha256": manifest.sha256,
            "test_mape": f"{manifest.metrics['mape']:.6f}",
            "training_data_hash": manifest.training_data_hash,
            "schema_version": manifest.schema_version,
        },
    )
    client.set_registered_model_alias(params.registry.model_name, registry.CHALLENGER, version)
    log.info("registered %s version %s as challenger", params.registry.model_name, version)
    decision = promote.run(params)
    fetch_model.run(params, alias=registry.CHAMPION, out=params.registry.serving_dir)
    return decision
