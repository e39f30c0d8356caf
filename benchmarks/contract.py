"""What others may read from the harness's results: where they are, and one pod's capacity curve.

The studies read the results and never the other way round; this module is their one entry
into the harness, and it imports nothing of it. `servers.ours.capacity_curve` of a results
JSON is a contract (the HPA simulation, `studies.autoscaling`, reads it): `benchmarks.run`
writes each step with exactly `CurveStep`'s fields, a reader decodes it into `CapacityCurve`.
"""

import json
from pathlib import Path
from typing import Any, Final

import msgspec

#: Where `benchmarks.run` writes `<date>-<host>.{json,md}`: one pair per full run.
RESULTS_DIR: Final = Path(__file__).resolve().parent / "results"


def write_pair(stem: Path, results: dict[str, Any], text: str) -> None:
    """A side measurement's results as `stem.json` and its report `text` as `stem.md`, printed."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    stem.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)


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
