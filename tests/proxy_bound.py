"""The per-pod proxy's bound on requests in flight, as its configuration documents it.

`inference/haproxy/haproxy.cfg` states the rule once, in its header: `PROXY_MAX_IN_FLIGHT` is
N prediction requests per Granian worker. Every place that sets `PROXY_MAX_IN_FLIGHT`
(docker-compose, the Kubernetes sidecar, the load test) is checked against that N, read here.
"""

import re
from pathlib import Path
from typing import Final

#: The proxy's configuration: the one file the tests, docker-compose and the sidecar run.
HAPROXY_CFG: Final = Path(__file__).resolve().parents[1] / "inference" / "haproxy" / "haproxy.cfg"
_RULE: Final = re.compile(r"^#\s+PROXY_MAX_IN_FLIGHT\b.*?\b(\d+) per worker \(WORKERS\)", re.M)


def in_flight_per_worker(config: Path = HAPROXY_CFG) -> int:
    """N of the header line `PROXY_MAX_IN_FLIGHT ... N per worker (WORKERS)` in the config."""
    found = _RULE.search(config.read_text(encoding="utf-8"))
    if found is None:
        raise ValueError(f"{config} does not state PROXY_MAX_IN_FLIGHT as 'N per worker (WORKERS)'")
    return int(found.group(1))


def max_in_flight_problem(max_in_flight: str, workers: str, where: str) -> str | None:
    """Why `max_in_flight` breaks the rule for `workers` Granian workers, or None if it keeps it."""
    wanted = in_flight_per_worker() * int(workers)
    if int(max_in_flight) != wanted:
        return (
            f"{where}: PROXY_MAX_IN_FLIGHT={max_in_flight}, not {in_flight_per_worker()} per "
            f"worker x WORKERS={workers} = {wanted}"
        )
    return None


_EXPORTER: Final = re.compile(
    r"^\s*http-request use-service prometheus-exporter if \{ path (\S+) \}", re.M
)


def exporter_path(config: str) -> str | None:
    """The path on which the proxy's config serves HAProxy's own metrics, if it does."""
    found = _EXPORTER.search(config)
    return found.group(1) if found else None
