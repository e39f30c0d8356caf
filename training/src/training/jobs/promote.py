"""`car-train promote`: move `champion` to the registered challenger only if it is not worse.

Both models are scored here, by their ONNX graphs, on the current test split: the comparison
is on the same rows whatever split the champion was evaluated on when it was trained. The
gate and the promotion are the lifecycle's (`training.lifecycle.promote`), under the
pipeline's policy (`training.core.promotion.NotWorse`).
"""

from training.config import Params
from training.core.promotion import NotWorse
from training.io import files, registry, splits
from training.io.mlflow_service import MlflowService
from training.lifecycle.promote import gate, promote
from training.records import PromotionRecord, Registration


def run(params: Params, service: MlflowService) -> PromotionRecord:
    """Compare `register`'s version with the champion on the test split; promote or refuse.

    Returns:
        The decision record (also written to `paths.promotion`).

    Raises:
        PipelineError: No registration, a version's run has no bundle, or the split is bad.
        InvalidBundleError: A version's bundle fails `read_verified`.
            The champion alias is not moved in either case.
    """
    paths, name = params.paths, params.registry.model_name
    policy = NotWorse(params.registry.promote_tolerance)
    with files.all_or_nothing(paths.promotion):
        registered = files.read_record(paths.registration, Registration, "car-train register")
        challenger = registry.require_version(service, name, registered.version)
        champion = registry.version_by_alias(service, name, registry.CHAMPION)
        test = splits.read(paths.splits, "test")
        result = gate(service, challenger, champion, {"test": test}, policy)
        before = None if champion is None else str(champion.version)
        promoted = result.decision.promote
        record = PromotionRecord(
            promote=promoted,
            reason=result.decision.reason,
            challenger_mape=result.challenger_scores["test"],
            champion_mape=None
            if result.champion_scores is None
            else result.champion_scores["test"],
            tolerance=policy.tolerance,
            model_name=name,
            challenger_version=str(challenger.version),
            champion_version_before=before,
            champion_version_after=str(challenger.version) if promoted else before,
            test_rows=len(test),
        )
        promote(service, name, result)
        files.write_json(record, paths.promotion)
    return record
