"""The promotion gate: a pure decision from two test MAPEs measured on the same rows."""

from dataclasses import dataclass


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
