"""The promotion gates: pure decisions from MAPEs of two models measured on the same rows."""

from dataclasses import dataclass

from training.records import MarketScores


@dataclass(frozen=True)
class Decision:
    """Whether the challenger becomes champion, and why."""

    promote: bool
    reason: str
    challenger_mape: float
    champion_mape: float | None
    tolerance: float


def decide(challenger_mape: float, champion_mape: float | None, tolerance: float) -> Decision:
    """Promote unless the challenger's MAPE is worse than the champion's beyond `tolerance`.

    Args:
        challenger_mape: The challenger's test MAPE.
        champion_mape: The current champion's MAPE on the same test rows; None if none.
        tolerance: How much worse (absolute MAPE) still counts as "not worse".
    """
    if champion_mape is None:
        return Decision(True, "no champion yet", challenger_mape, None, tolerance)
    if challenger_mape <= champion_mape + tolerance:
        reason = (
            f"challenger MAPE {challenger_mape:.5f} <= champion {champion_mape:.5f} "
            f"+ tolerance {tolerance:g}"
        )
        return Decision(True, reason, challenger_mape, champion_mape, tolerance)
    reason = (
        f"challenger MAPE {challenger_mape:.5f} > champion {champion_mape:.5f} "
        f"+ tolerance {tolerance:g}"
    )
    return Decision(False, reason, challenger_mape, champion_mape, tolerance)


def decide_retrain(
    challenger: MarketScores, champion: MarketScores | None, old_market_tolerance: float
) -> tuple[bool, str]:
    """Promote a retrained challenger that is better on the new market and not much worse on 2020.

    Args:
        challenger: The challenger's MAPEs on the new market's holdout and the 2020 test split.
        champion: The champion's MAPEs on the same rows; None when there is no champion.
        old_market_tolerance: The challenger's 2020 MAPE may be at most the champion's
            × (1 + this): "not catastrophically worse" on the market it was trained for.

    Returns:
        (promote, reason).
    """
    if champion is None:
        return True, "no champion yet"
    ceiling = champion.test_2020_mape * (1.0 + old_market_tolerance)
    better_new = challenger.holdout_mape < champion.holdout_mape
    new = "<" if better_new else ">="
    figures = (
        f"holdout MAPE {challenger.holdout_mape:.5f} {new} champion {champion.holdout_mape:.5f}; "
        f"2020 test MAPE {challenger.test_2020_mape:.5f} vs ceiling {ceiling:.5f} "
        f"(champion {champion.test_2020_mape:.5f} x (1 + {old_market_tolerance:g}))"
    )
    if not better_new:
        return False, f"not better on the new market: {figures}"
    if challenger.test_2020_mape > ceiling:
        return False, f"catastrophically worse on 2020: {figures}"
    return True, f"better on the new market, not much worse on 2020: {figures}"
