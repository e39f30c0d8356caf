"""`car-train promote-live --run NAME`: the gate on live evidence, from a drift run's shadow rows.

Reads `paths.drift/<run>/summary.json`'s `shadow` (champion vs challenger realized MAPE on the
same labelled shadow rows, `training.core.live_evidence`), asks the one gate under
`BetterOnLiveEvidence(rollout.min_labelled_rows)`, records the decision on the challenger's
version (`training.lifecycle.promote.promote`) and, if promoted, publishes the new champion
into the serving folder and withdraws the `challenger` pointer. A challenger worse with
confidence (the interval wholly above zero) is withdrawn too; an inconclusive one stays staged.
Only a run about the trial in force is judged: its champion the `champion` alias now, its
challenger the one staged now and never rolled back or withdrawn (`require_on_trial`).
"""

import logging
from pathlib import Path

import msgspec

from shared_schema.serving_folder import CHALLENGER, PointerError, read_pointer
from training.config import Params
from training.core.live_evidence import ShadowComparison
from training.core.promotion import (
    LIVE_CI_HIGH,
    LIVE_CI_LOW,
    LIVE_ROWS,
    BetterOnLiveEvidence,
    Decision,
    decide,
)
from training.errors import PipelineError
from training.io import registry, serving
from training.io.mlflow_service import MlflowService
from training.jobs.drift import SUMMARY_FILE
from training.lifecycle.promote import GateResult, promote
from training.lifecycle.publish import publish
from training.lifecycle.rollback import ROLLBACK_REASON_TAG, WITHDRAWN_REASON_TAG

log = logging.getLogger(__name__)


class _ShadowOfRun(msgspec.Struct, frozen=True):
    """The part of a drift run's summary this job reads."""

    shadow: ShadowComparison | None = None


def read_shadow(params: Params, run_name: str) -> ShadowComparison | None:
    """A drift run's shadow comparison; None when it had no labelled shadow rows.

    Raises:
        PipelineError: The run's summary is missing or is not a drift summary.
    """
    path = params.paths.drift / run_name / SUMMARY_FILE
    try:
        return msgspec.json.decode(path.read_bytes(), type=_ShadowOfRun).shadow
    except FileNotFoundError as error:
        raise PipelineError(f"{path}: no drift run summary (run `car-train drift`)") from error
    except msgspec.DecodeError as error:
        raise PipelineError(f"{path}: not a drift summary: {error}") from error


def run(
    params: Params, service: MlflowService, *, run_name: str, out: str | Path | None = None
) -> Decision:
    """Decide on the drift run's live evidence; promote and publish into `out` when it says so.

    `out` is the serving folder (default `paths.serving_bundle`).

    Raises:
        PipelineError: The run's summary is missing, or has no labelled shadow rows, or a
            version it names is not registered, or the run is not about the trial in force
            (`require_on_trial`).
    """
    shadow = read_shadow(params, run_name)
    if shadow is None:
        path = params.paths.drift / run_name / SUMMARY_FILE
        raise PipelineError(f"{path}: no labelled shadow rows: nothing to judge a challenger on")
    name = params.registry.model_name
    folder = Path(out) if out else params.paths.serving_bundle
    challenger = registry.require_version(service, name, shadow.challenger_version)
    champion = registry.require_version(service, name, shadow.champion_version)
    require_on_trial(service, name, folder, shadow, challenger.tags)
    challenger_scores = {
        "live": shadow.challenger_mape,
        LIVE_CI_LOW: shadow.ci_low,
        LIVE_CI_HIGH: shadow.ci_high,
        LIVE_ROWS: float(shadow.labelled_rows),
    }
    champion_scores = {"live": shadow.champion_mape}
    policy = BetterOnLiveEvidence(params.rollout.min_labelled_rows)
    decision = decide(challenger_scores, champion_scores, policy)
    promote(
        service,
        name,
        GateResult(challenger, champion, challenger_scores, champion_scores, decision),
    )
    if decision.promote:
        publish(service, name, registry.CHAMPION, folder)
        serving.unstage(folder, shadow.challenger_version)
    # Worse with confidence: no more shadow runs or canary answers for it. An interval that
    # holds zero keeps it staged, gathering rows for the next drift run.
    elif shadow.ci_low > 0.0 and serving.unstage(folder, shadow.challenger_version):
        log.info("challenger %s withdrawn: worse on live traffic", challenger.version)
    return decision


def require_on_trial(
    service: MlflowService,
    model_name: str,
    folder: Path,
    shadow: ShadowComparison,
    challenger_tags: dict[str, str],
) -> None:
    """Refuse a drift run that is not about the trial in force now.

    Its champion must be the `champion` alias now, its challenger the one `folder`'s
    `challenger` pointer names now, and that challenger never rolled back or withdrawn by
    `car-train watch` (its `rollback_reason` or `withdrawn_reason` tag): a stale run would
    otherwise promote over a newer champion, or bring back a version live traffic refused.

    Raises:
        PipelineError: Naming the run's version and the one in force, or the tag and its reason.
    """
    alias = registry.version_by_alias(service, model_name, registry.CHAMPION)
    champion = None if alias is None else str(alias.version)
    if champion != shadow.champion_version:
        raise PipelineError(
            f"the drift run compared against champion version {shadow.champion_version}, but "
            f"the `champion` alias names version {champion} now: a stale run is not judged"
        )
    try:
        staged = read_pointer(folder, CHALLENGER)
    except PointerError as error:
        raise PipelineError(str(error)) from error
    now = None if staged is None else staged.model_version
    if now != shadow.challenger_version:
        raise PipelineError(
            f"the drift run's challenger is version {shadow.challenger_version}, but {folder}'s "
            f"`{CHALLENGER}` pointer names version {now} now: a stale run is not judged"
        )
    for tag in (ROLLBACK_REASON_TAG, WITHDRAWN_REASON_TAG):
        if tag in challenger_tags:
            raise PipelineError(
                f"challenger version {shadow.challenger_version} is tagged {tag}: "
                f"{challenger_tags[tag]!r}: live traffic refused it once; stage a new version "
                "(or delete the tag to try it again)"
            )
