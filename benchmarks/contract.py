"""What others may read from the harness's results: where they are, and one pod's capacity curve.

The studies read the results and never the other way round; this module is their one entry
into the harness, and it imports nothing of it. `servers.ours.capacity_curve` of a results
JSON is a contract (the HPA simulation, `studies.autoscaling`, reads it): `benchmarks.run`
writes each step with exactly `CurveStep`'s fields, a reader decodes it into `CapacityCurve`.
"""

from pathlib import Path
from typing import Final

import msgspec

#: Where `benchmarks.run` writes `<date>-<host>.{json,md}`: one pair per full run.
RESULTS_DIR: Final = Path(__file__).resolve().parent / "results"


class CurveStep(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One step of the capacity curve: a fixed open-loop rate and what the pod did at it."""

    share: float
    offered_rps: float
    achieved_rps: float
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    server_cpu_cores: float
    in_flight_mean: float


class CapacityCurve(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`servers.ours.capacity_curve`: one worker on one core, steps at shares of its capacity."""

    arrivals: str
    workers: int
    cores: int
    capacity_rps: float
    steps: list[CurveStep]
