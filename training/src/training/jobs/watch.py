"""`car-train watch`: read the rollout's live figures from Prometheus; roll back on a breach.

The candidate is the serving folder's `challenger` when one is staged (a shadow or canary
trial; a breach withdraws it and tags its version `withdrawn_reason`), else `current` judged
against `previous` (the window after a promotion; a breach rolls pointer and `champion` alias
back, `training.lifecycle.rollback`). Either acts only on the version judged: the folder may
change while Prometheus answers, and a challenger or champion put there since stays.
Figures over `rollout.window`: the candidate's share of failed model runs, its p95 answer
latency against the baseline's (`carprice_version_request_duration_seconds`), and, given a
drift run with labelled shadow rows, both realized MAPEs. Thresholds: params.yaml `rollout`.

A staged challenger found without a breach has its canary share stepped up the schedule
(`rollout.canary_steps`, `training.core.rollout.next_canary_share`): the serving folder's
`canary_share` file, which the servers re-read as they re-read the pointers. A share only
grows on a run that found nothing wrong with both versions having answered at least
`rollout.min_canary_answers` requests in the window (no traffic is no evidence); a breach
withdraws the challenger and its share. An empty schedule is shadow only: no share file.
"""

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from shared_schema.serving_folder import (
    CHALLENGER,
    CURRENT,
    PREVIOUS,
    CanaryShare,
    read_canary_share,
    read_pointer,
)
from training.config import CanaryStep, Params
from training.core.rollout import (
    LiveFigures,
    breaches,
    enough_answers,
    next_canary_share,
    on_trial_after_promotion,
)
from training.errors import PipelineError
from training.io import registry, serving
from training.io.mlflow_service import MlflowService
from training.io.prometheus import query_number
from training.jobs.promote_live import read_shadow
from training.lifecycle.rollback import WITHDRAWN_REASON_TAG, rollback

log = logging.getLogger(__name__)


class WatchResult(msgspec.Struct, frozen=True, kw_only=True):
    """What the watcher saw and did: `action` is "none", "withdrawn" or "rolled_back".

    `canary` is the challenger's canary share after the run (None without a challenger).
    """

    figures: LiveFigures
    reasons: list[str]
    action: str
    canary: CanaryShare | None = None


def run(
    params: Params,
    service: MlflowService,
    *,
    prometheus: str,
    out: str | Path | None = None,
    drift_run: str | None = None,
) -> WatchResult:
    """Judge the candidate on live figures and act on a breach.

    Raises:
        PipelineError: Prometheus cannot answer, nothing is served, or a rollback is refused
            (the previous bundle is gone: the message names it).
    """
    folder = Path(out) if out else params.paths.serving_bundle
    challenger = read_pointer(folder, CHALLENGER)
    current = read_pointer(folder, CURRENT)
    if current is None:
        raise PipelineError(f"{folder}: nothing is served (no {CURRENT} pointer)")
    baseline: str | None
    if challenger is not None:
        candidate, baseline = challenger.model_version, current.model_version
    else:
        published = datetime.fromtimestamp((folder / CURRENT).stat().st_mtime, UTC)
        minutes = params.rollout.post_promotion_minutes
        if not on_trial_after_promotion(published, datetime.now(UTC), minutes):
            # Nothing on trial: a watcher run on a schedule judges nothing, rolls nothing back.
            log.info(
                "nothing on trial: no challenger, %s written over %d min ago", CURRENT, minutes
            )
            idle = LiveFigures(candidate=current.model_version, baseline=None)
            result = WatchResult(figures=idle, reasons=[], action="none")
            print(msgspec.json.encode(result).decode())
            return result
        previous = read_pointer(folder, PREVIOUS)
        candidate = current.model_version
        baseline = None if previous is None else previous.model_version
    figures = live_figures(params, prometheus, candidate, baseline, drift_run)
    reasons = breaches(figures, params.rollout)
    action = "none"
    canary = None
    if challenger is not None and not reasons and params.rollout.canary_steps:
        evidence = enough_answers(figures, params.rollout)
        now = datetime.now(UTC)
        canary = step_canary(folder, params.rollout.canary_steps, candidate, now, evidence)
    if reasons:
        reason = "; ".join(reasons)
        name = params.registry.model_name
        if challenger is None:
            rollback(service, name, folder, reason, expected=candidate)
            action = "rolled_back"
        elif serving.unstage(folder, candidate) is not None:
            action = "withdrawn"
            log.warning("withdrew challenger %s: %s", candidate, reason)
            tag_withdrawn(service, name, candidate, reason)
        else:  # another challenger was staged while the figures were read: it is not judged
            log.warning("challenger %s breached but is no longer staged: %s", candidate, reason)
    result = WatchResult(figures=figures, reasons=reasons, action=action, canary=canary)
    print(msgspec.json.encode(result).decode())
    return result


def tag_withdrawn(service: MlflowService, model_name: str, version: str, reason: str) -> None:
    """Tag a withdrawn challenger `withdrawn_reason` (promote-live refuses it then).

    A bundle staged by hand from outside the registry has no version to tag: said, not raised
    (the withdrawal itself has happened).
    """
    try:
        registry.require_version(service, model_name, version)
    except PipelineError as error:
        log.warning("withdrawal of version %s not tagged: %s", version, error)
        return
    service.client.set_model_version_tag(model_name, version, WITHDRAWN_REASON_TAG, reason)


def step_canary(
    folder: Path, steps: Sequence[CanaryStep], challenger: str, now: datetime, evidence: bool
) -> CanaryShare | None:
    """Move the challenger's canary share along the schedule, if due; the share in force after.

    `evidence`: both versions answered enough requests in the window to step past a step.

    Raises:
        PipelineError: The canary share file is there but unreadable (the message names it).
    """
    try:
        held = read_canary_share(folder)
    except ValueError as error:  # PointerError: a file this code cannot read is not guessed at
        raise PipelineError(str(error)) from error
    new = next_canary_share(steps, challenger, held, now, evidence=evidence)
    if new is None:
        return held
    serving.write_canary_share(folder, new)
    log.info("canary of version %s at step %d: share %g", challenger, new.step, new.share)
    return new


def live_figures(
    params: Params, prometheus: str, candidate: str, baseline: str | None, drift_run: str | None
) -> LiveFigures:
    """The candidate's and the baseline's figures over `rollout.window`."""
    window = params.rollout.window
    runs = f'carprice_model_runs_total{{model_version="{candidate}"}}'
    failed = f'carprice_model_runs_total{{model_version="{candidate}",outcome="error"}}'
    error_ratio = query_number(
        prometheus, f"sum(rate({failed}[{window}])) / sum(rate({runs}[{window}]))"
    )

    def answers(version: str) -> float | None:
        answered = f'carprice_version_request_duration_seconds_count{{model_version="{version}"}}'
        return query_number(prometheus, f"sum(increase({answered}[{window}]))")

    def p95(version: str) -> float | None:
        buckets = f'carprice_version_request_duration_seconds_bucket{{model_version="{version}"}}'
        return query_number(
            prometheus, f"histogram_quantile(0.95, sum by (le) (rate({buckets}[{window}])))"
        )

    shadow = None if drift_run is None else read_shadow(params, drift_run)
    mapes: tuple[float | None, float | None] = (None, None)
    if shadow is not None and shadow.challenger_version == candidate:
        mapes = (shadow.challenger_mape, shadow.champion_mape)
    return LiveFigures(
        candidate=candidate,
        baseline=baseline,
        error_ratio=error_ratio,
        candidate_p95_s=p95(candidate),
        baseline_p95_s=None if baseline is None else p95(baseline),
        candidate_mape=mapes[0],
        baseline_mape=mapes[1],
        candidate_answers=answers(candidate),
        baseline_answers=None if baseline is None else answers(baseline),
    )
