"""The per-pod proxy (HAProxy, `inference/haproxy/haproxy.cfg`) in front of a real `car-serve`.

The bound on requests in flight sits in front of the worker's event loop, where turning a
request away costs the worker nothing (README, "Overload"); these tests run the repository's
config unchanged, as docker-compose and the Kubernetes sidecar do.
"""

import os
import threading
from pathlib import Path

import httpx
import msgspec
import pytest

from inference.encode import ErrorResponse
from inference.errors import RETRY_AFTER_S
from shared_schema.prediction_log import REQUEST_ID_HEADER

from ..proxy_bound import in_flight_per_worker
from .conftest import free_port, haproxy, pod_layout, serve
from .load import CAR, LoadResult, cpu_seconds, describe, h2load, idle_seconds, rss_mib

pytestmark = [
    pytest.mark.integration,
    pytest.mark.needs("car-serve", "haproxy", "h2load"),
]

#: Prediction requests in flight per Granian worker, as the config states it (and says why).
IN_FLIGHT_PER_WORKER = in_flight_per_worker()

#: The share of its core's free time the worker must use at twice capacity (see the test).
FED_FLOOR = 0.6


@pytest.mark.slow
def test_proxy_503_has_the_servers_shape_and_retry_after(tmp_path: Path) -> None:
    """A 503 made by the proxy carries Retry-After and the server's JSON error body."""
    upstream = f"127.0.0.1:{free_port()}"  # nobody listens: every request gets the proxy's 503
    with haproxy(upstream, tmp_path / "haproxy.log", max_in_flight=1) as url:
        response = httpx.post(f"{url}/predict", content=CAR.read_bytes(), timeout=10)
    assert response.status_code == 503
    assert response.headers["retry-after"] == RETRY_AFTER_S
    assert response.headers["content-type"] == "application/json"
    body = msgspec.json.decode(response.content, type=ErrorResponse)
    assert body.status_code == 503
    assert "retry later" in body.detail


class Prober(threading.Thread):
    """Asks `/ready` every 50 ms until stopped, recording each status (0: no answer)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.statuses: list[int] = []
        self._done = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=2) as client:
            while not self._done.wait(0.05):
                try:
                    self.statuses.append(client.get(f"{self.url}/ready").status_code)
                except httpx.TransportError:
                    self.statuses.append(0)

    def stop(self) -> None:
        self._done.set()
        self.join()


@pytest.mark.slow
def test_proxy_bound_keeps_accepted_latency_near_nominal_at_twice_capacity(
    tmp_path: Path, model_bundle: Path
) -> None:
    """At 2x capacity through the proxy: accepted p95 within 3x nominal, fast 503s, RSS bounded.

    One worker with micro-batching on (the default), on a core of its own as in a pod (the
    proxy and the load generator on the other: sharing it, they took the worker's CPU, and it
    served 38 % of its capacity in one CI run), behind the proxy bounding it to
    `IN_FLIGHT_PER_WORKER` requests. Capacity is what as many connections as the bound get
    answered, nominal the latency at a quarter of it; then twice the capacity is offered from
    100 connections. Probes go round the bound and keep answering.
    """
    with (
        pod_layout() as pinned,
        serve(model_bundle, tmp_path / "server.log", workers=1, launcher=pinned) as server,
        haproxy(
            f"127.0.0.1:{server.port}", tmp_path / "haproxy.log", max_in_flight=IN_FLIGHT_PER_WORKER
        ) as proxy,
    ):
        echoed = httpx.post(
            f"{proxy}/predict",
            content=CAR.read_bytes(),
            headers={"content-type": "application/json", REQUEST_ID_HEADER: "proxy-passes-it-1"},
        ).headers.get(REQUEST_ID_HEADER)
        url = f"{proxy}/predict"
        (worker,) = server.worker_pids()
        capacity = h2load(url, tmp_path / "capacity.log", clients=IN_FLIGHT_PER_WORKER, seconds=2)
        accepted_per_s = capacity.rate(200)
        nominal = h2load(
            url, tmp_path / "nominal.log", clients=2, seconds=2, rps_per_client=accepted_per_s / 8
        )
        rss_before = rss_mib(worker)
        clients = 100
        offered = 2 * accepted_per_s
        prober = Prober(proxy)
        prober.start()
        core = min(os.sched_getaffinity(worker))  # pinned: its only core

        def overload_phase(log: Path) -> tuple[LoadResult, float, float]:
            """Twice capacity for 4 s: the result, the worker's cores busy and share fed."""
            cpu_before, idle_before = cpu_seconds(worker), idle_seconds(core)
            result = h2load(url, log, clients=clients, seconds=4, rps_per_client=offered / clients)
            # The CPU it used while requests came (h2load's start and its log's parsing
            # excluded). Of the CPU its core had for it (what other processes left), the share
            # it used: a starved worker leaves its core idle; one the machine's other jobs
            # crowd out does not.
            worker_cpu = cpu_seconds(worker) - cpu_before
            fed = worker_cpu / (worker_cpu + idle_seconds(core) - idle_before)
            return result, worker_cpu / result.duration_s, fed

        try:
            overload, worker_cores, worker_fed = overload_phase(tmp_path / "overload.log")
            fed_phases = [worker_fed]
            if worker_fed <= FED_FLOOR:  # a noisy host's tail, or a starving proxy: look again
                fed_phases.append(overload_phase(tmp_path / "overload-again.log")[2])
        finally:
            prober.stop()
        rss_after = rss_mib(worker)
        shed_by_server = server.metric('carprice_rejected_total{reason="lagging"}')
    print(
        f"\nproxy, {IN_FLIGHT_PER_WORKER} in flight: capacity {accepted_per_s:.0f}/s; "
        f"{describe('nominal', nominal)}; offered {offered:.0f}/s; "
        f"{describe('overload', overload)}; accepted p95 "
        f"{overload.p95(200) / nominal.p95(200):.1f}x nominal, served "
        f"{overload.rate(200) / accepted_per_s:.0%} of capacity, worker busy "
        f"{worker_cores:.2f} cores, {worker_fed:.0%} of what its core had free (every phase: "
        f"{', '.join(f'{fed:.0%}' for fed in fed_phases)}); 503 share "
        f"{overload.count(503) / len(overload.requests):.0%}; shed by the server "
        f"{shed_by_server:.0f}; /ready {len(prober.statuses)} probes, statuses "
        f"{sorted(set(prober.statuses))}; worker RSS {rss_before:.0f} -> {rss_after:.0f} MiB"
    )
    assert echoed == "proxy-passes-it-1"
    statuses = {status for status, _ in overload.requests}
    assert statuses <= {200, 503}, statuses  # no connection failed, nothing but shedding
    assert overload.count(503) > 0  # the excess was turned away
    # The bound, 3x nominal, with a 15 ms floor: on the shared 2-core machine here
    # the accepted p95 was 6.7-10.4 ms over seven runs, the nominal 2.1-6.8 ms with the other
    # jobs' load, so 3x failed twice in seven (8.7 ms against 2.1 ms). Without the bound the
    # accepted p95 is 48-79 ms.
    assert overload.p95(200) <= max(3 * nominal.p95(200), 0.015)
    # Not turning away what the worker could serve: the bound keeps it fed (the 1 ms queue
    # does not leave its slots idle). Its CPU is the measure more than its rate against
    # `capacity`: the capacity's four closed-loop clients send in lockstep, so the worker
    # batches four at a time, while the proxy hands it requests as they arrive and slots free.
    # Over nine runs here it was busy 0.80-0.98 cores and served 61-111 % of that capacity
    # (unpinned, in one CI run, 38 %); a proxy refusing most of what it could pass falls far
    # below both floors. The floor is on the share of its core's free time, not on cores: a
    # fresh-clone run beside two other jobs had it busy 0.40 cores at 71 % of capacity. One CI
    # run read 55 % (0.56 cores, 58 % of capacity), where four runs here the next day read
    # 70-89 %: below the floor, a second phase is run, and the better of the two must clear it.
    # A proxy that starves its worker does so in both. The other checks read the first phase,
    # but for the probes, RSS and the server's shed count, which cover every phase run (for RSS
    # and the probes, stricter). The floor guards against gross starvation only: it does not
    # tell the bound of 4 from 1 or 2 (here, 60-63 % and 69-70 %).
    assert max(fed_phases) > FED_FLOOR, fed_phases
    assert overload.rate(200) > 0.25 * accepted_per_s
    # Turned away fast: within a few ms (1 ms in the queue), sooner than an accepted answer.
    assert overload.p95(503) <= overload.p95(200)
    assert set(prober.statuses) == {200}
    assert rss_after - rss_before < 64
