"""Load for the fault tests: h2load (nghttp2's HTTP load generator) and what its log says.

h2load keeps a fixed request rate per connection (`--rps`) and logs every request's status
and time, so a test can offer a known load and read what was accepted, how fast, and what
was refused. Debian's `nghttp2-client` has it (`make system-deps` installs it).
"""

import shutil
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

CAR = Path(__file__).parents[1] / "data" / "car.json"


@dataclass(frozen=True)
class LoadResult:
    """Every request of one h2load run: (HTTP status, seconds), 0 for a failed connection."""

    requests: list[tuple[int, float]]
    duration_s: float

    def latencies(self, status: int) -> list[float]:
        return sorted(seconds for code, seconds in self.requests if code == status)

    def count(self, status: int) -> int:
        return len(self.latencies(status))

    def p95(self, status: int) -> float:
        """The 95th percentile latency of the requests answered `status`, in seconds."""
        latencies = self.latencies(status)
        return statistics.quantiles(latencies, n=20)[-1] if len(latencies) > 1 else 0.0

    def rate(self, status: int) -> float:
        """Responses per second with this status."""
        return self.count(status) / self.duration_s


def h2load(
    url: str, log: Path, *, clients: int, seconds: float, rps_per_client: float | None = None
) -> LoadResult:
    """POST the sample car to `url` from `clients` connections for `seconds`.

    Args:
        url: The endpoint (loopback only).
        log: Where h2load writes its per-request log.
        clients: Concurrent HTTP/1.1 connections, one request in flight on each.
        seconds: How long to send.
        rps_per_client: Requests per second per connection; as fast as answered when None.
    """
    binary = shutil.which("h2load")
    if binary is None:
        pytest.fail("h2load not found: install Debian's 'nghttp2-client' (make system-deps)")
    log.unlink(missing_ok=True)  # h2load appends
    command = [
        binary,
        "--h1",
        f"--clients={clients}",
        f"--duration={seconds:g}",
        f"--data={CAR}",
        "--header=content-type: application/json",
        f"--log-file={log}",
        url,
    ]
    if rps_per_client is not None:
        command.insert(2, f"--rps={rps_per_client:g}")
    subprocess.run(command, check=True, capture_output=True, timeout=seconds + 60)
    requests = []
    for line in log.read_text().splitlines():
        _, status, micros = line.split("\t")
        requests.append((int(status), int(micros) / 1e6))
    return LoadResult(requests, seconds)
