"""Load for the fault tests: h2load (nghttp2's HTTP load generator) and what its log says.

h2load keeps a fixed request rate per connection (`--rps`) and logs every request's status
and time, so a test can offer a known load and read what was accepted, how fast, and what
was refused. Debian's `nghttp2-client` has it (`make system-deps` installs it).

At a fixed rate, the connections are opened spread over one rate interval: h2load ticks every
connection's rate from when it connected, so connections opened together send together, and
100 of them at 50/s would offer their load as one burst of 100 every 20 ms, not a steady flow.
"""

import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil

from ..programs import program

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
    binary = program("h2load")
    log.unlink(missing_ok=True)  # h2load appends
    command = [
        binary,
        "--h1",
        f"--clients={clients}",
        f"--data={CAR}",
        "--header=content-type: application/json",
        f"--log-file={log}",
        url,
    ]
    if rps_per_client is None:
        command.insert(2, f"--duration={seconds:g}")
    else:
        # `--rate` (connections opened per period, whole milliseconds) excludes `--duration`:
        # the length comes from the number of requests instead.
        per_period = max(1, round(clients * rps_per_client / 1e3))
        period_ms = max(1, round(1e3 * per_period / (clients * rps_per_client)))
        command[2:2] = [
            f"--rps={rps_per_client:g}",
            f"--rate={per_period}",
            f"--rate-period={period_ms}ms",
            f"--requests={clients * max(1, round(rps_per_client * seconds))}",
        ]
    subprocess.run(command, check=True, capture_output=True, timeout=seconds + 60)
    requests, first, last = [], float("inf"), 0.0
    for line in log.read_text().splitlines():
        start, status, micros = (int(field) for field in line.split("\t"))
        requests.append((status, micros / 1e6))
        first, last = min(first, start), max(last, start + micros)
    # What it took, which is longer than asked when the answers come slower than the rate.
    return LoadResult(requests, max(seconds, (last - first) / 1e6))


def describe(name: str, result: LoadResult) -> str:
    """One line of what a run sent and how it was answered, for `pytest -s`."""
    return (
        f"{name}: {len(result.requests) / result.duration_s:.0f} req/s sent, "
        f"200: {result.rate(200):.0f}/s p95 {result.p95(200) * 1e3:.1f} ms, "
        f"503: {result.rate(503):.0f}/s p95 {result.p95(503) * 1e3:.1f} ms"
    )


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far, user and system, seconds."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def idle_seconds(core: int) -> float:
    """Time one core has spent idle so far (idle and I/O wait), seconds."""
    times = psutil.cpu_times(percpu=True)[core]
    return float(times.idle + getattr(times, "iowait", 0.0))


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")
