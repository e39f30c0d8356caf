"""`car-train promote`: move `champion` to the `challenger` only if it is not worse.

Both models are scored here, by their ONNX graphs, on the current test split: the comparison
is on the same rows whatever split the champion was evaluated on when it was trained.
"""

import logging
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from training.config import Params
from training.core.metrics import regression_metrics
from training.core.promotion import decide
from training.io import files, onnx_graph, registry, tracking
from training.jobs import split

log = logging.getLogger(__name__)

REPORT_FILE = "promotion.json"


def run(params: Params) -> dict[str, Any]:
    """Compare challenger and champion on the test split; promote or refuse; record it.

    Returns:
        The decision record (also written to `reports_dir/promotion.json`).

    Raises:
        PipelineError: No challenger, a bundle is missing or corrupt, or the split is bad.
            The champion alias is not moved then.
    """
    name = params.registry.model_name
    client = tracking.client(params.registry)
    challenger = registry.require_alias(client, name, registry.CHALLENGER)
    champion = registry.version_by_alias(client, name, registry.CHAMPION)
    test = split.read_split(params, "test")
    price = test["price"].to_numpy(np.float64)
    inputs = onnx_graph.graph_inputs(test)

    def test_mape(version: Any) -> float:
        model_bytes, _ = registry.fetch_bundle(version)
        return regression_metrics(price, onnx_graph.run_graph(model_bytes, inputs))["mape"]

    challenger_mape = test_mape(challenger)
    same = champion is not None and champion.version == challenger.version
    champion_mape = None if champion is None else (challenger_mape if same else test_mape(champion))
    decision = decide(challenger_mape, champion_mape, params.registry.promote_tolerance)
    record: dict[str, Any] = {
        **asdict(decision),
        "model_name": name,
        "challenger_version": str(challenger.version),
        "champion_version_before": None if champion is None else str(champion.version),
        "champion_version_after": str(challenger.version)
        if decision.promote
        else (None if champion is None else champion.version),
        "test_rows": len(test),
        "decided_at": datetime.now(tz=UTC).isoformat(timespec="seconds"),
    }
    if decision.promote:
        client.set_registered_model_alias(name, registry.CHAMPION, str(challenger.version))
    verdict = "promoted" if decision.promote else "refused"
    client.set_model_version_tag(name, str(challenger.version), "promotion", verdict)
    client.set_model_version_tag(name, str(challenger.version), "promotion_reason", decision.reason)
    client.set_tag(challenger.run_id, "promotion", verdict)
    client.set_tag(challenger.run_id, "promotion_reason", decision.reason)
    files.write_json(record, Path(params.data.reports_dir) / REPORT_FILE)
    log.info("%s version %s: %s", verdict, challenger.version, decision.reason)
    return record
