"""The promotion gate: one decision from two models' MAPEs on the same rows, under a policy.

The gate (`decide`) is one: a challenger with no champion to beat is promoted, otherwise the
policy judges the two models' scores. There are two policies:

- `NotWorse`, the pipeline's (`car-train promote`): scored on the test split, promoted unless
  worse than the champion beyond `registry.promote_tolerance`;
- `BetterOnNewMarket`, the retrain's (`car-train retrain`): scored on the new market's newest
  slice and the 2020 test split, promoted when better on the first and not catastrophically
  worse on the second (`retrain.old_market_tolerance`);
- `BetterOnLiveEvidence`, the rollout's (`car-train promote-live`): scored on labelled shadow
  rows of live traffic (`training.core.live_evidence`), promoted when there are enough of them
  and the paired-bootstrap interval of the MAPE difference lies wholly below zero.

Pure: the scores come from `training.lifecycle.promote`, which scores both registered graphs.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

#: A model's MAPE on each set of rows a policy scores it on, by the set's name.
Scores = Mapping[str, float]


@dataclass(frozen=True)
class Decision:
    """Whether the challenger becomes champion, and why."""

    promote: bool
    reason: str


class Policy(Protocol):
    """How a gate compares a challenger with the champion."""

    #: The row sets both models are scored on: the keys `judge` reads from their scores.
    scored_on: ClassVar[tuple[str, ...]]

    def judge(self, challenger: Scores, champion: Scores) -> Decision:
        """The decision between a challenger and an existing champion."""
        ...


@dataclass(frozen=True)
class NotWorse:
    """The pipeline's policy: promote unless the test MAPE is worse beyond `tolerance`.

    Attributes:
        tolerance: How much worse (absolute MAPE) still counts as "not worse".
    """

    tolerance: float
    scored_on: ClassVar[tuple[str, ...]] = ("test",)

    def judge(self, challenger: Scores, champion: Scores) -> Decision:
        """Promote when the challenger's test MAPE <= the champion's + `tolerance`."""
        new, old = challenger["test"], champion["test"]
        promote = new <= old + self.tolerance
        relation = "<=" if promote else ">"
        reason = (
            f"challenger MAPE {new:.5f} {relation} champion {old:.5f} "
            f"+ tolerance {self.tolerance:g}"
        )
        return Decision(promote, reason)


@dataclass(frozen=True)
class BetterOnNewMarket:
    """The retrain's policy: better on the new market, not catastrophically worse on 2020.

    Attributes:
        old_market_tolerance: The challenger's 2020 test MAPE may be at most the champion's
            × (1 + this): "not catastrophically worse" on the market it was trained for.
    """

    old_market_tolerance: float
    scored_on: ClassVar[tuple[str, ...]] = ("holdout", "test_2020")

    def judge(self, challenger: Scores, champion: Scores) -> Decision:
        """Promote when the holdout MAPE is lower and the 2020 MAPE is under the ceiling."""
        tolerance = self.old_market_tolerance
        ceiling = champion["test_2020"] * (1.0 + tolerance)
        better_new = challenger["holdout"] < champion["holdout"]
        new = "<" if better_new else ">="
        figures = (
            f"holdout MAPE {challenger['holdout']:.5f} {new} champion "
            f"{champion['holdout']:.5f}; 2020 test MAPE {challenger['test_2020']:.5f} vs "
            f"ceiling {ceiling:.5f} (champion {champion['test_2020']:.5f} x (1 + {tolerance:g}))"
        )
        if not better_new:
            return Decision(False, f"not better on the new market: {figures}")
        if challenger["test_2020"] > ceiling:
            return Decision(False, f"catastrophically worse on 2020: {figures}")
        return Decision(True, f"better on the new market, not much worse on 2020: {figures}")


#: `BetterOnLiveEvidence`'s extra keys in the challenger's scores: the interval of
#: challenger MAPE - champion MAPE on the shadow rows, and how many labelled rows it rests on.
LIVE_CI_LOW = "live_ci_low"
LIVE_CI_HIGH = "live_ci_high"
LIVE_ROWS = "live_rows"


@dataclass(frozen=True)
class BetterOnLiveEvidence:
    """The rollout's policy: better on live traffic's labelled shadow rows, with confidence.

    Attributes:
        min_labelled_rows: Fewer labelled shadow rows than this is no evidence: refused.
    """

    min_labelled_rows: int
    scored_on: ClassVar[tuple[str, ...]] = ("live",)

    def judge(self, challenger: Scores, champion: Scores) -> Decision:
        """Promote when rows >= the minimum and the difference's interval is below zero."""
        missing = [key for key in (LIVE_CI_LOW, LIVE_CI_HIGH, LIVE_ROWS) if key not in challenger]
        if missing:
            raise ValueError(f"live evidence lacks {', '.join(missing)}")
        rows = int(challenger[LIVE_ROWS])
        low, high = challenger[LIVE_CI_LOW], challenger[LIVE_CI_HIGH]
        figures = (
            f"live MAPE {challenger['live']:.5f} vs champion {champion['live']:.5f} on {rows} "
            f"labelled shadow rows, difference interval [{low:+.5f}, {high:+.5f}]"
        )
        if rows < self.min_labelled_rows:
            return Decision(
                False,
                f"too few labelled shadow rows ({rows} < {self.min_labelled_rows}): {figures}",
            )
        if high < 0.0:
            return Decision(True, f"better on live traffic, interval excludes zero: {figures}")
        return Decision(False, f"not better on live traffic with confidence: {figures}")


def decide(challenger: Scores, champion: Scores | None, policy: Policy) -> Decision:
    """The gate: promote a first model; otherwise the policy judges the two models' scores.

    Args:
        challenger: The challenger's MAPE on each of `policy.scored_on`.
        champion: The champion's MAPEs on the same rows; None when there is no champion.
        policy: `NotWorse`, `BetterOnNewMarket` or `BetterOnLiveEvidence`.

    Raises:
        ValueError: A model was not scored on a row set the policy compares.
    """
    for who, scores in (("challenger", challenger), ("champion", champion)):
        missing = [name for name in policy.scored_on if scores is not None and name not in scores]
        if missing:
            raise ValueError(
                f"{type(policy).__name__} compares MAPEs on {', '.join(policy.scored_on)}; "
                f"the {who} has none on {', '.join(missing)}"
            )
    if champion is None:
        return Decision(True, "no champion yet")
    return policy.judge(challenger, champion)
