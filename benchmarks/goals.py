"""`goals.toml`, validated: the goals, when a step is sustained, when the generator was the limit.

The one home of those rules for every part of the harness: the open-loop generator's process
(`openloop_runs`) and Locust's stage plan judge steps with them, the report states them. It
imports nothing of the harness, so the generator's process loads no server or report code.
"""

from pathlib import Path
from typing import Any, Final, Literal

import msgspec

GOALS_FILE: Final = Path(__file__).with_name("goals.toml")


class Sustained(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """When a fixed-rate step counts as sustained."""

    min_achieved: float
    max_failure_rate: float
    max_p95_ms: float

    def holds(self, step: dict[str, Any]) -> bool:
        """Whether a fixed-rate step's figures meet every condition."""
        return bool(
            step["rps"] >= self.min_achieved * step["offered_rps"]
            and step["failure_rate"] < self.max_failure_rate
            and step["p95_ms"] <= self.max_p95_ms
        )


class GeneratorLimited(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """When a step measured the load generator as much as the server."""

    max_lag_share: float
    max_cpu: float

    def holds(self, lag_p50_ms: float, latency_p50_ms: float, cpu: float) -> bool:
        """Whether sends left late for the latency measured, or the generator's core was full."""
        return lag_p50_ms > self.max_lag_share * latency_p50_ms or self.busy(cpu)

    def busy(self, cpu: float) -> bool:
        """Whether the generator used so much of its core that it may have been the limit."""
        return cpu >= self.max_cpu


class Goal(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One goal: a figure (or its ratio to another) compared with a target."""

    text: str
    figure: str
    comparison: Literal[">=", "<="]
    target: float
    unit: str
    over: str | None = None


class Goals(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`goals.toml`."""

    sustained: Sustained
    generator_limited: GeneratorLimited
    goal: list[Goal]

    def target_of(self, figure: str) -> float:
        """The target of the goal that reads `figure`.

        Raises:
            ValueError: No goal reads that figure.
        """
        for goal in self.goal:
            if goal.figure == figure:
                return goal.target
        raise ValueError(f"no goal in goals.toml reads {figure!r}")


def load_goals(path: Path = GOALS_FILE) -> Goals:
    """Read and validate the goals file."""
    return msgspec.toml.decode(path.read_bytes(), type=Goals)
