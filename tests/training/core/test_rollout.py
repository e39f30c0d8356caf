"""The rollout's rules: thresholds crossed named with their figures, the canary's schedule."""

import math
from datetime import UTC, datetime, timedelta

import pytest

from shared_schema.serving_folder import CanaryShare
from training.config import CanaryStep, load_params
from training.core.rollout import LiveFigures, breaches, enough_answers, next_canary_share

RULES = load_params().rollout


def test_a_healthy_candidate_crosses_nothing() -> None:
    """Low errors, the same p95 and MAPE as the baseline: no reason to roll back."""
    figures = LiveFigures(
        candidate="2",
        baseline="1",
        error_ratio=0.0,
        candidate_p95_s=0.004,
        baseline_p95_s=0.004,
        candidate_mape=0.15,
        baseline_mape=0.15,
    )
    assert breaches(figures, RULES) == []


@pytest.mark.parametrize(
    ("figures", "reason"),
    [
        (LiveFigures(candidate="2", baseline="1", error_ratio=0.5), "error ratio 0.5000 >"),
        (
            LiveFigures(candidate="2", baseline="1", candidate_p95_s=0.02, baseline_p95_s=0.004),
            "p95 20.0 ms > version 1 p95 4.0 ms x",
        ),
        (
            LiveFigures(candidate="2", baseline="1", candidate_mape=0.3, baseline_mape=0.15),
            "realized MAPE 0.3000 > version 1 0.1500 x",
        ),
    ],
)
def test_each_threshold_crossed_is_named(figures: LiveFigures, reason: str) -> None:
    """A doubled p95, a doubled MAPE or half the runs failing: one reason, with the figures."""
    (found,) = breaches(figures, RULES)
    assert found.startswith("version 2: ")
    assert reason in found


def test_no_data_is_no_evidence() -> None:
    """Missing or NaN figures (no traffic in the window) never trigger a rollback."""
    figures = LiveFigures(
        candidate="2",
        baseline=None,
        error_ratio=math.nan,
        candidate_p95_s=0.5,
        baseline_p95_s=None,
    )
    assert breaches(figures, RULES) == []


STEPS = [CanaryStep(share=0.05, hold_minutes=30), CanaryStep(share=0.25, hold_minutes=60)]
T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _held(step: int, share: float, version: str = "2") -> CanaryShare:
    return CanaryShare(challenger_version=version, share=share, step=step, since=T0)


@pytest.mark.parametrize(
    ("held", "now", "expected"),
    [
        (None, T0, (0, 0.05)),  # a new challenger starts at the first step
        (_held(0, 0.05, version="1"), T0, (0, 0.05)),  # another version's share: start again
        (_held(0, 0.05), T0 + timedelta(minutes=29), None),  # held too briefly: stays
        (_held(0, 0.05), T0 + timedelta(minutes=30), (1, 0.25)),  # held its 30 min: steps up
        (_held(1, 0.25), T0 + timedelta(days=1), None),  # the last step stays
        (_held(3, 0.9), T0, (1, 0.25)),  # a schedule shortened since: its new last step
    ],
)
def test_the_canary_steps_up_its_schedule(
    held: CanaryShare | None, now: datetime, expected: tuple[int, float] | None
) -> None:
    """Each step is held its minutes, then the next; a new challenger starts at the first."""
    new = next_canary_share(STEPS, "2", held, now, evidence=True)
    if expected is None:
        assert new is None
    else:
        assert new is not None
        assert (new.step, new.share, new.challenger_version, new.since) == (*expected, "2", now)


@pytest.mark.parametrize(
    ("held", "expected"),
    [
        (None, (0, 0.05)),  # a new challenger still starts at the first step
        (_held(0, 0.05), None),  # held long enough, but nobody was answered by it: stays
        (_held(3, 0.9), (1, 0.25)),  # a shortened schedule still clamps
    ],
)
def test_without_answers_the_canary_never_steps_up(
    held: CanaryShare | None, expected: tuple[int, float] | None
) -> None:
    """No evidence: the share starts or is clamped, but never moves past a step it holds."""
    new = next_canary_share(STEPS, "2", held, T0 + timedelta(days=1), evidence=False)
    if expected is None:
        assert new is None
    else:
        assert new is not None
        assert (new.step, new.share) == expected


def test_an_empty_schedule_is_shadow_only() -> None:
    """`canary_steps: []`: no share for any challenger, held or not."""
    assert next_canary_share([], "2", None, T0, evidence=True) is None
    assert next_canary_share([], "2", _held(0, 0.05), T0, evidence=True) is None


@pytest.mark.parametrize(
    ("candidate", "baseline", "enough"),
    [
        (None, 500.0, False),  # Prometheus had no series: no traffic, or not scraping
        (math.nan, 500.0, False),
        (49.0, 500.0, False),  # one short of min_canary_answers
        (50.0, None, False),  # the champion's figures missing: nothing to compare with
        (50.0, 50.0, True),
    ],
)
def test_enough_answers_needs_both_versions_answered(
    candidate: float | None, baseline: float | None, enough: bool
) -> None:
    """Both versions need `min_canary_answers` answers in the window to count as evidence."""
    figures = LiveFigures(
        candidate="2", baseline="1", candidate_answers=candidate, baseline_answers=baseline
    )
    assert enough_answers(figures, RULES) is enough
