"""One pod's measured curve, from the harness's results, with the overload model above it.

The curve is `servers.ours.capacity_curve` of a benchmark results JSON (`benchmarks.contract`:
the newest that has one, or one named), its cold starts `servers.ours.cold_starts_s`.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from benchmarks.contract import CapacityCurve


class MissingCurveError(LookupError):
    """No benchmark results JSON holds a capacity curve the simulation can read.

    Either none has one, or the one named breaks the contract (`benchmarks.contract`).
    """


@dataclass(frozen=True)
class PodCurve:
    """One pod's measured figures against its request rate, with the overload model above."""

    rate: np.ndarray
    p50_s: np.ndarray
    p95_s: np.ndarray
    p99_s: np.ndarray
    failures: np.ndarray
    cpu_cores: np.ndarray
    in_flight: np.ndarray
    capacity_rps: float
    cores: float
    overload_s: float

    @classmethod
    def from_results(cls, curve: dict[str, Any], overload_s: float) -> "PodCurve":
        """The curve's steps by achieved rate, with the server's overload wait above them."""
        steps = sorted(curve["steps"], key=lambda s: s["achieved_rps"])
        column = {k: np.array([s[k] for s in steps], dtype=float) for k in steps[0]}
        return cls(
            rate=column["achieved_rps"],
            p50_s=column["p50_ms"] / 1e3,
            p95_s=column["p95_ms"] / 1e3,
            p99_s=column["p99_ms"] / 1e3,
            failures=column["failures"] / np.maximum(column["requests"], 1),
            cpu_cores=column["server_cpu_cores"],
            in_flight=column["in_flight_mean"],
            capacity_rps=float(curve["capacity_rps"]),
            cores=float(curve["cores"]),
            overload_s=overload_s,
        )

    def at(self, rate: np.ndarray) -> dict[str, np.ndarray]:
        """Every figure at each per-pod rate (requests per second)."""
        rate = np.asarray(rate, dtype=float)
        last, capacity = self.rate[-1], self.capacity_rps
        above = rate > last
        rho_last = min(last / capacity, 0.999)
        # M/M/1 growth from the last step up to the capacity, then the shedding regime.
        growth = np.where(
            rate < capacity, (1 - rho_last) / np.maximum(1 - rate / capacity, 1e-9), np.inf
        )
        served = np.minimum(rate, max(capacity, last))
        out: dict[str, np.ndarray] = {}
        for name in ("p50_s", "p95_s", "p99_s"):
            measured = getattr(self, name)
            ceiling = max(measured[-1], self.overload_s)
            grown = np.minimum(measured[-1] * growth, ceiling)
            out[name] = np.where(above, grown, np.interp(rate, self.rate, measured))
        shed = np.where(rate > capacity, 1 - capacity / np.maximum(rate, 1e-9), 0.0)
        out["failures"] = np.where(
            above, np.maximum(self.failures[-1], shed), np.interp(rate, self.rate, self.failures)
        )
        zero_rate = np.concatenate([[0.0], self.rate])
        for name in ("cpu_cores", "in_flight"):
            measured = np.concatenate([[0.0], getattr(self, name)])
            per_request = measured[-1] / last
            out[name] = np.where(
                above,
                per_request
                * served
                * (out["p95_s"] / self.p95_s[-1] if name == "in_flight" else 1),
                np.interp(rate, zero_rate, measured),
            )
        out["cpu_cores"] = np.minimum(out["cpu_cores"], self.cores)
        return out


def slow_share(figures: dict[str, np.ndarray], threshold_s: float) -> np.ndarray:
    """Share of requests slower than `threshold_s`, read off the p50/p95/p99 of each row."""
    quantiles = np.stack([figures["p50_s"], figures["p95_s"], figures["p99_s"]], axis=-1)
    share = np.empty(len(quantiles))
    for i, row in enumerate(quantiles):
        # Nothing is known beyond the p99: at or above it, no request counts as slow.
        share[i] = (
            0.0
            if threshold_s >= row[-1]
            else 1 - np.interp(threshold_s, np.concatenate([[0.0], row]), [0.0, 0.5, 0.95, 0.99])
        )
    return share


def find_results(results_dir: Path) -> Path:
    """The newest benchmark results JSON with a capacity curve (names sort by date)."""
    for path in sorted(results_dir.glob("[0-9]*.json"), reverse=True):
        ours = json.loads(path.read_text("utf-8")).get("servers", {}).get("ours", {})
        if "capacity_curve" in ours:
            return path
    raise MissingCurveError(
        f"no results JSON in {results_dir} has servers.ours.capacity_curve (one pod's "
        "p95-vs-rate curve): run the benchmark first, or pass --results FILE"
    )


def load_curve(path: Path) -> tuple[dict[str, Any], list[float]]:
    """The capacity curve and the cold starts (seconds) of our server in a results JSON."""
    ours = json.loads(path.read_text("utf-8")).get("servers", {}).get("ours", {})
    missing = [k for k in ("capacity_curve", "cold_starts_s") if k not in ours]
    if missing:
        raise MissingCurveError(f"{path}: servers.ours has no {' or '.join(missing)}")
    try:
        msgspec.convert(ours["capacity_curve"], CapacityCurve)
    except msgspec.ValidationError as error:
        raise MissingCurveError(
            f"{path}: servers.ours.capacity_curve breaks its contract "
            f"(benchmarks.contract.CapacityCurve): {error}"
        ) from error
    return ours["capacity_curve"], list(ours["cold_starts_s"])
