"""The rollback rule: each threshold crossed is named with its figures; no data crosses none."""

import math

import pytest

from training.config import load_params
from training.core.rollout import LiveFigures, breaches

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
