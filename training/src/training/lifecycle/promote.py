"""Lifecycle, steps 4 and 5: the gate between two registered models, then the promotion.

`gate` scores both registered graphs (the bundles the registry would serve, run by
onnxruntime) on the same rows and asks the one gate (`training.core.promotion.decide`) under a
policy: `NotWorse` for `car-train promote`, `BetterOnNewMarket` for `car-train retrain`.
`promote` is the one path that records a decision (tags on the challenger's version and run,
the gate's MAPEs on the run) and moves `champion`.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from training.core.metrics import regression_metrics
from training.core.promotion import Decision, Policy, Scores, decide
from training.core.retrain import precedes
from training.errors import PipelineError
from training.io import onnx_scoring, registry
from training.io.mlflow_service import MlflowService, TrackedRun

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateResult:
    """Both models, their MAPEs on each row set, and the decision.

    Attributes:
        challenger: The challenger's registry version.
        champion: The champion's, or None when there is none.
        challenger_scores: The challenger's MAPE on each row set.
        champion_scores: The champion's, or None.
        decision: Whether the challenger is promoted, and why.
    """

    challenger: Any
    champion: Any | None
    challenger_scores: Scores
    champion_scores: Scores | None
    decision: Decision


def gate(
    service: MlflowService,
    challenger: Any,
    champion: Any | None,
    frames: Mapping[str, pd.DataFrame],
    policy: Policy,
    *,
    periods: Mapping[str, str] | None = None,
) -> GateResult:
    """Score both versions' graphs on every frame (raw fields + `price`) and decide.

    A frame named in `periods` is scored at that period's market level of each version's
    own index (`onnx_scoring.price_at`): the 2020 test split at 2020's level, so a model
    priced for 2022 is not judged wrong for 2020 prices. The others are scored as served.

    Args:
        service: The MLflow store the versions are registered in.
        challenger: The challenger's registry version.
        champion: The champion's (the same version is scored once), or None.
        frames: The row sets by name: the policy's `scored_on`.
        policy: How the two are compared.
        periods: The market period (ISO date) to score each named frame at.

    Raises:
        PipelineError: A version's run has no bundle, or its index lacks a period.
        InvalidBundleError: A version's bundle fails `read_verified`.
        ValueError: `frames` lacks a row set the policy compares.
    """
    at = periods or {}

    def scores(version: Any) -> Scores:
        model_bytes, manifest = registry.fetch_bundle(service, version)
        try:
            return {
                name: regression_metrics(
                    frame["price"].to_numpy(np.float64),
                    onnx_scoring.price_at(model_bytes, manifest, frame, at.get(name)),
                )["mape"]
                for name, frame in frames.items()
            }
        except KeyError as exc:
            raise PipelineError(f"version {version.version}: {exc.args[0]}") from exc

    new = scores(challenger)
    same = champion is not None and champion.version == challenger.version
    old = None if champion is None else (new if same else scores(champion))
    return GateResult(challenger, champion, new, old, decide(new, old, policy))


def check_unseen(champion: Any, holdout_from: str) -> None:
    """Refuse a champion that trained on holdout rows: the comparison would favour it.

    `champion` is its registry version (None: no champion yet); its trained-through tag
    (`registry.TRAINED_THROUGH_TAG`, a `slice_key`) must come before `holdout_from`.

    Raises:
        PipelineError: It does not, naming both.
    """
    if champion is None:
        return
    through = champion.tags.get(registry.TRAINED_THROUGH_TAG)
    if through and not precedes(through, holdout_from):
        raise PipelineError(
            f"champion version {champion.version} trained on new-market rows up to {through}, "
            f"which reach into the holdout (from {holdout_from}); the gate needs newer "
            "labelled data or a smaller retrain.holdout_fraction"
        )


def promote(service: MlflowService, model_name: str, result: GateResult) -> None:
    """Record the gate's decision on the challenger; move `champion` to it if promoted.

    The version and its run get the tags `promotion` (promoted or refused) and
    `promotion_reason`; the run gets the MAPEs as `gate_{challenger,champion}_<rows>_mape`.
    """
    client, version = service.client, str(result.challenger.version)
    verdict = "promoted" if result.decision.promote else "refused"
    tags = {"promotion": verdict, "promotion_reason": result.decision.reason}
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    run = TrackedRun(service, result.challenger.run_id)
    run.set_tags(tags)
    scores = {"challenger": result.challenger_scores, "champion": result.champion_scores or {}}
    run.log_metrics(
        {
            f"gate_{who}_{rows}_mape": mape
            for who, mapes in scores.items()
            for rows, mape in mapes.items()
        }
    )
    if result.decision.promote:
        client.set_registered_model_alias(model_name, registry.CHAMPION, version)
    log.info("%s version %s: %s", verdict, version, result.decision.reason)
