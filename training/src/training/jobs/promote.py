"""`car-train promote`: move `champion` to the registered challenger only if it is not worse.

Both models are scored here, by their ONNX graphs, on the current test split: the comparison
is on the same rows whatever split the champion was evaluated on when it was trained.
"""

import logging
from typing import Any

import numpy as np

from training.config import Params
from training.core.metrics import regression_metrics
from training.core.promotion import decide
from training.io import files, onnx_scoring, registry, splits, tracking
from training.records import PromotionRecord, Registration

log = logging.getLogger(__name__)


def run(params: Params) -> PromotionRecord:
    """Compare `register`'s version with the champion on the test split; promote or refuse.

    Returns:
        The decision record (also written to `paths.promotion`).

    Raises:
        PipelineError: No registration, a bundle is missing or corrupt, or the split is bad.
            The champion alias is not moved then.
    """
    paths, name = params.paths, params.registry.model_name
    with files.all_or_nothing(paths.promotion):
        registered = files.read_record(paths.registration, Registration, "car-train register")
        client = tracking.client(params.registry)
        challenger = registry.require_version(client, name, registered.version)
        champion = registry.version_by_alias(client, name, registry.CHAMPION)
        test = splits.read(paths.splits, "test")
        price = test["price"].to_numpy(np.float64)

        def test_mape(version: Any) -> float:
            model_bytes, manifest = registry.fetch_bundle(version)
            feeds = onnx_scoring.frame_feeds(test, manifest.inputs)
            predicted = onnx_scoring.run_graph(model_bytes, feeds)
            return regression_metrics(price, predicted)["mape"]

        challenger_mape = test_mape(challenger)
        same = champion is not None and champion.version == challenger.version
        champion_mape = (
            None if champion is None else (challenger_mape if same else test_mape(champion))
        )
        decision = decide(challenger_mape, champion_mape, params.registry.promote_tolerance)
        before = None if champion is None else str(champion.version)
        record = PromotionRecord(
            promote=decision.promote,
            reason=decision.reason,
            challenger_mape=decision.challenger_mape,
            champion_mape=decision.champion_mape,
            tolerance=decision.tolerance,
            model_name=name,
            challenger_version=str(challenger.version),
            champion_version_before=before,
            champion_version_after=str(challenger.version) if decision.promote else before,
            test_rows=len(test),
        )
        if decision.promote:
            client.set_registered_model_alias(name, registry.CHAMPION, str(challenger.version))
        verdict = "promoted" if decision.promote else "refused"
        for key, value in (("promotion", verdict), ("promotion_reason", decision.reason)):
            client.set_model_version_tag(name, str(challenger.version), key, value)
            client.set_tag(challenger.run_id, key, value)
        files.write_json(record, paths.promotion)
    log.info("%s version %s: %s", verdict, challenger.version, decision.reason)
    return record
