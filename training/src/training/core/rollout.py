"""The rollback rule and the canary schedule, judged on live figures.

Pure: the figures come from Prometheus (`training.io.prometheus`) and a drift run's shadow
comparison (`training.core.live_evidence`); `car-train watch` acts on the verdict and, when
there is no breach, steps the canary (`next_canary_share`).
"""

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

import msgspec

from shared_schema.serving_folder import CanaryShare
from training.config import CanaryStep, RolloutParams


class LiveFigures(msgspec.Struct, frozen=True, kw_only=True):
    """What the watcher read over the window; None where there was no data.

    Attributes:
        candidate: The version on trial (the challenger, or a champion just promoted).
        baseline: The version it is compared with.
        error_ratio: The candidate's failed runs / its runs.
        candidate_p95_s: The candidate's p95 answer latency, seconds.
        baseline_p95_s: The baseline's.
        candidate_mape: The candidate's realized MAPE on labelled shadow rows.
        baseline_mape: The baseline's on the same rows.
        candidate_answers: The requests the candidate answered (a canary's, not its shadow runs).
        baseline_answers: The requests the baseline answered.
    """

    candidate: str
    baseline: str | None
    error_ratio: float | None = None
    candidate_p95_s: float | None = None
    baseline_p95_s: float | None = None
    candidate_mape: float | None = None
    baseline_mape: float | None = None
    candidate_answers: float | None = None
    baseline_answers: float | None = None


def breaches(figures: LiveFigures, rules: RolloutParams) -> list[str]:
    """Every threshold the candidate crosses, each as a sentence with its figures; [] for none.

    A figure without data (None or NaN) crosses nothing: no traffic is no evidence.
    """
    name, base = figures.candidate, figures.baseline
    reasons = []
    errors = _known(figures.error_ratio)
    if errors is not None and errors > rules.max_error_ratio:
        reasons.append(f"version {name}: error ratio {errors:.4f} > {rules.max_error_ratio:g}")
    p95, base_p95 = _known(figures.candidate_p95_s), _known(figures.baseline_p95_s)
    if p95 is not None and base_p95 is not None and p95 > base_p95 * rules.max_p95_ratio:
        reasons.append(
            f"version {name}: p95 {p95 * 1e3:.1f} ms > version {base} p95 "
            f"{base_p95 * 1e3:.1f} ms x {rules.max_p95_ratio:g}"
        )
    mape, base_mape = _known(figures.candidate_mape), _known(figures.baseline_mape)
    if mape is not None and base_mape is not None and mape > base_mape * rules.max_mape_ratio:
        reasons.append(
            f"version {name}: realized MAPE {mape:.4f} > version {base} "
            f"{base_mape:.4f} x {rules.max_mape_ratio:g}"
        )
    return reasons


def _known(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def enough_answers(figures: LiveFigures, rules: RolloutParams) -> bool:
    """Whether both versions answered `rules.min_canary_answers` requests over the window.

    A candidate nobody sent to (no traffic, a Prometheus not scraping, pods that never loaded
    it) crosses no threshold: without this its share would climb on no evidence at all.
    """
    wanted = rules.min_canary_answers
    counts = (_known(figures.candidate_answers), _known(figures.baseline_answers))
    return all(count is not None and count >= wanted for count in counts)


def next_canary_share(
    steps: Sequence[CanaryStep],
    challenger: str,
    held: CanaryShare | None,
    now: datetime,
    *,
    evidence: bool,
) -> CanaryShare | None:
    """The canary share to write now, or None to leave the one held.

    A challenger without a share of its own (none held, or one for another version) starts at
    the first step; a step held its `hold_minutes` moves to the next, given `evidence` (enough
    answers judged in the window, `enough_answers`); the last step stays. A schedule shortened
    since the share was written puts it on its new last step. An empty schedule (shadow only)
    never has a share: None.
    """
    if not steps:
        return None
    if held is None or held.challenger_version != challenger:
        return CanaryShare(challenger_version=challenger, share=steps[0].share, step=0, since=now)
    step = min(held.step, len(steps) - 1)
    held_long_enough = now - held.since >= timedelta(minutes=steps[step].hold_minutes)
    if step + 1 < len(steps) and held_long_enough and evidence:
        step += 1
    if step == held.step and steps[step].share == held.share:
        return None
    return CanaryShare(challenger_version=challenger, share=steps[step].share, step=step, since=now)


def on_trial_after_promotion(published: datetime, now: datetime, minutes: int) -> bool:
    """Whether a champion published at `published` is still in its watched window at `now`."""
    return now - published <= timedelta(minutes=minutes)
