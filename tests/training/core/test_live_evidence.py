"""Live evidence: both MAPEs on the same labelled shadow rows, a paired bootstrap, the gate."""

import numpy as np
import pytest

from training.core.live_evidence import compare
from training.core.promotion import (
    LIVE_CI_HIGH,
    LIVE_CI_LOW,
    LIVE_ROWS,
    BetterOnLiveEvidence,
    decide,
)

ROWS = 400


def labelled(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and a champion off them by a random ±0-30 % (MAPE ~0.15)."""
    rng = np.random.default_rng(seed)
    y_true = rng.uniform(2e5, 3e6, ROWS)
    return y_true, y_true * (1 + rng.uniform(-0.3, 0.3, ROWS))


def evidence(challenger: np.ndarray, seed: int = 0) -> dict[str, float]:
    """The challenger's live scores against `labelled(seed)`'s champion."""
    y_true, champion = labelled(seed)
    result = compare(
        y_true, champion, challenger, versions=("1", "2"), confidence=0.95, resamples=1000, seed=0
    )
    return {
        "live": result.challenger_mape,
        LIVE_CI_LOW: result.ci_low,
        LIVE_CI_HIGH: result.ci_high,
        LIVE_ROWS: result.labelled_rows,
    }


def champion_scores(seed: int = 0) -> dict[str, float]:
    y_true, champion = labelled(seed)
    return {"live": float(np.mean(np.abs(champion - y_true) / y_true))}


def test_a_truly_better_challenger_is_promoted_on_live_evidence() -> None:
    """Errors halved on the same rows: the interval is below zero and the gate promotes."""
    y_true, champion = labelled()
    better = y_true + (champion - y_true) / 2
    decision = decide(evidence(better), champion_scores(), BetterOnLiveEvidence(200))
    assert decision.promote, decision.reason
    assert "interval excludes zero" in decision.reason


def test_a_twice_worse_challenger_is_never_promoted() -> None:
    """Errors doubled: the interval is above zero; refused, with the figures."""
    y_true, champion = labelled()
    worse = y_true + (champion - y_true) * 2
    scores = evidence(worse)
    assert scores[LIVE_CI_LOW] > 0
    decision = decide(scores, champion_scores(), BetterOnLiveEvidence(200))
    assert not decision.promote
    assert "not better on live traffic with confidence" in decision.reason


def test_the_same_model_is_not_better_with_confidence() -> None:
    """Identical prices: a zero-width interval at zero does not exclude zero."""
    _, champion = labelled()
    decision = decide(evidence(champion), champion_scores(), BetterOnLiveEvidence(200))
    assert not decision.promote


def test_too_few_labelled_rows_are_no_evidence() -> None:
    """A better challenger on fewer rows than the minimum is refused, naming both counts."""
    y_true, champion = labelled()
    better = y_true + (champion - y_true) / 2
    decision = decide(evidence(better), champion_scores(), BetterOnLiveEvidence(ROWS + 1))
    assert not decision.promote
    assert f"too few labelled shadow rows ({ROWS} < {ROWS + 1})" in decision.reason


def test_the_interval_is_reproducible_and_covers_the_difference() -> None:
    """The same rows and seed give the same interval; it contains the observed difference."""
    y_true, champion = labelled()
    challenger = y_true * 1.1
    runs = [
        compare(
            y_true, champion, challenger, versions=("1", "2"), confidence=0.9, resamples=500, seed=3
        )
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    assert runs[0].ci_low <= runs[0].difference <= runs[0].ci_high


@pytest.mark.parametrize(
    ("y_true", "champion", "challenger", "message"),
    [
        ([], [], [], "no labelled shadow rows"),
        ([1.0, 2.0], [1.0], [1.0, 2.0], "same length"),
        ([0.0], [1.0], [1.0], "positive"),
    ],
)
def test_bad_rows_are_refused_naming_the_fault(
    y_true: list[float], champion: list[float], challenger: list[float], message: str
) -> None:
    """Empty, ragged or non-positive labels: a ValueError naming what is wrong."""
    with pytest.raises(ValueError, match=message):
        compare(
            np.array(y_true),
            np.array(champion),
            np.array(challenger),
            versions=("1", "2"),
            confidence=0.95,
            resamples=100,
            seed=0,
        )


def test_live_evidence_without_its_interval_is_refused() -> None:
    """Scores lacking the interval keys: the policy raises naming them, never guesses."""
    with pytest.raises(ValueError, match="live evidence lacks live_ci_low, live_ci_high"):
        decide({"live": 0.1, LIVE_ROWS: 500}, {"live": 0.2}, BetterOnLiveEvidence(200))
