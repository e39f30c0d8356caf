"""Faults under load, each against a real `car-serve` with concurrent clients on loopback.

Every load is bounded in time (seconds) and count; the figures are printed (`pytest -s`)
and the assertions are on behaviour, with bounds generous enough for a shared, noisy machine.
"""

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, multiprocess

from .conftest import NO_LAG_SHEDDING, serve, wait_for
from .load import CAR, describe, h2load, rss_mib

pytestmark = [pytest.mark.integration, pytest.mark.needs("car-serve", "h2load")]

PREDICT_200 = 'carprice_http_requests_total{route="/predict",status="200"}'


@pytest.mark.slow
def test_overload_sheds_fast_503s_and_keeps_accepted_latency(
    tmp_path: Path, model_bundle: Path
) -> None:
    """At ~2x capacity the worker keeps serving its capacity, sheds the rest fast, RSS bounded.

    One worker, micro-batching off so that capacity does not grow with the number of
    connections (a batch of 64 costs little more than one): capacity is what 8 connections
    get answered 200, nominal the latency at a quarter of it. The shedding threshold is 10 ms
    so that admission, not only the clients slowing down with the latency, takes the excess.
    """
    with serve(
        model_bundle,
        tmp_path / "server.log",
        workers=1,
        SHED_LAG_MS="10",
        BATCH_ENABLED="0",
    ) as server:
        url = f"{server.url}/predict"
        (worker,) = server.worker_pids()
        capacity = h2load(url, tmp_path / "capacity.log", clients=8, seconds=2)
        accepted_per_s = capacity.rate(200)
        nominal = h2load(
            url, tmp_path / "nominal.log", clients=2, seconds=2, rps_per_client=accepted_per_s / 8
        )
        rss_before = rss_mib(worker)
        lagging = 'carprice_rejected_total{reason="lagging"}'
        shed_before = server.metric(lagging)
        clients = 100
        offered = 2 * accepted_per_s
        overload = h2load(
            url,
            tmp_path / "overload.log",
            clients=clients,
            seconds=4,
            rps_per_client=offered / clients,
        )
        rss_after = rss_mib(worker)
        shed = server.metric(lagging) - shed_before
    print(
        f"\ncapacity {accepted_per_s:.0f}/s; {describe('nominal', nominal)}; offered "
        f"{offered:.0f}/s; {describe('overload', overload)}; 503 share "
        f"{overload.count(503) / len(overload.requests):.0%}; shed at admission {shed:.0f}; "
        f"worker RSS {rss_before:.0f} -> {rss_after:.0f} MiB"
    )
    statuses = {status for status, _ in overload.requests}
    assert statuses <= {200, 503}, statuses  # no connection failed, nothing but shedding
    assert shed > 0
    # No collapse: the excess is turned away, the worker still serves about its capacity.
    assert overload.rate(200) > 0.5 * accepted_per_s
    # Turned away fast: sooner than the accepted ones are served.
    assert overload.p95(503) <= overload.p95(200)
    # Bounded, generously: the 2 cores here are shared by the clients, the server and others.
    assert overload.p95(200) <= max(3 * nominal.p95(200), 0.25)
    assert rss_after - rss_before < 64


#: Client threads posting cars in the fault tests (unless a test asks for more).
CLIENT_THREADS = 4


class Clients:
    """Threads posting the sample car, a new connection each time, until stopped.

    Each outcome is the status, or the kind of failure: `refused` (the connection was never
    accepted) or `dropped` (the request was sent and no response came back).
    """

    def __init__(self, url: str, threads: int = CLIENT_THREADS) -> None:
        self.url = url
        self.outcomes: list[int | str] = []
        self.answered_at: list[float] = []  # time.monotonic() of each 200
        self.errors: list[str] = []  # what each connection failure said
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._post) for _ in range(threads)]

    def __enter__(self) -> "Clients":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _post(self) -> None:
        body = CAR.read_bytes()
        # `Connection: close`: a new connection per request, so a request fails only with the
        # worker it was sent to, not because a kept-alive connection died earlier.
        headers = {"content-type": "application/json", "connection": "close"}
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(self.url, content=body, headers=headers)
                    self.outcomes.append(response.status_code)
                    if response.status_code == 200:
                        self.answered_at.append(time.monotonic())
                except httpx.ConnectError as error:
                    self.outcomes.append("refused")
                    self.errors.append(repr(error.__cause__ or error))
                    time.sleep(0.01)
                except httpx.TransportError as error:
                    self.outcomes.append("dropped")
                    self.errors.append(repr(error.__cause__ or error))

    def count(self, outcome: int | str) -> int:
        return sum(1 for seen in self.outcomes if seen == outcome)


@pytest.mark.slow
def test_sigkill_of_a_worker_under_load(tmp_path: Path, model_bundle: Path) -> None:
    """A killed worker is replaced; only its in-flight requests fail; the metrics carry on.

    Granian (respawn_failed_workers, set by car-serve) starts a new worker at once, on the same
    shared socket; the other worker keeps accepting meanwhile. What car-serve adds: the new
    worker drops the dead one's live gauges (`Metrics.reap_dead_workers`), which would
    otherwise be merged into /metrics for ever. Granian gives up (exits) if the same worker
    dies again within 5.5 s of its respawn: a crash loop is an outage, not a respawn.
    """
    metrics_dir = tmp_path / "metrics"
    with serve(
        model_bundle,
        tmp_path / "server.log",
        workers=2,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        **NO_LAG_SHEDDING,
    ) as server:
        victim, survivor = server.worker_pids()
        with Clients(f"{server.url}/predict") as clients:
            time.sleep(1)
            served_before = server.metric(PREDICT_200)
            sent_before_kill = len(clients.outcomes)
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            wait_for(
                lambda: len(server.worker_pids()) == 2 and victim not in server.worker_pids(),
                "Granian to respawn the worker",
                timeout=60,
            )
            wait_for(
                lambda: server.metric('carprice_model_loads_total{outcome="success"}') >= 3,
                "the new worker to load the model",
                timeout=60,
            )
            replaced_at = time.monotonic()
            replaced_after = replaced_at - killed_at
            time.sleep(1)  # both workers serving again
        served_after = server.metric(PREDICT_200)
        ready = server.metric("carprice_model_ready")
        inflight = server.metric("carprice_inflight_requests")
        stale = list(metrics_dir.glob(f"gauge_live*_{victim}.db"))
    failed = len(clients.outcomes) - clients.count(200)
    print(
        f"\nSIGKILL worker {victim}: replaced and warm in {replaced_after:.1f} s; "
        f"{len(clients.outcomes)} requests ({len(clients.outcomes) - sent_before_kill} from "
        f"the kill on), failed: {failed} {Counter(o for o in clients.outcomes if o != 200)}; "
        f"survivor {survivor}"
    )
    # The other worker kept accepting: answers went on while the victim was dead and replaced.
    answered_meanwhile = sum(1 for at in clients.answered_at if killed_at < at < replaced_at)
    print(f"answered while the worker was replaced: {answered_meanwhile}; errors {clients.errors}")
    assert answered_meanwhile > 0
    # At most the requests in flight on the killed worker, plus any a client had just sent it
    # (one per client thread, each may be caught twice by a respawn on a loaded machine). A
    # refused connect counts here too: CI once saw 1 in 2,434 on its busy machine (stop 27),
    # cause not reproduced in 8 runs under a 2-core CPU hog; the listening socket is shared, so
    # the error's text is printed above to tell the next failure's cause.
    assert failed <= 8, clients.errors
    assert served_after > served_before  # the dead worker's counts stay, the rest go on
    # A request is counted after its response is sent (`metrics_middleware`), so a SIGKILL
    # between the two leaves a 200 the clients got and the metric never saw: at most one per
    # client thread. CI saw exactly that once (2,908 answered, 2,907 counted; stop 31).
    assert clients.count(200) <= served_after + CLIENT_THREADS
    assert ready == 1.0
    assert inflight == 0.0  # the dead worker's in-flight gauge is no longer merged
    assert stale == [], "the dead worker's live gauges are still merged"


@pytest.mark.slow
def test_sigterm_under_load_drains_without_losing_accepted_requests(
    tmp_path: Path, model_bundle: Path
) -> None:
    """SIGTERM under load: every request the app took is answered, none lost, exit 0.

    Granian stops accepting on SIGTERM and runs each worker's lifespan shutdown at once; the
    worker then waits for the requests it has taken (`admission.InFlight`) before stopping the
    batch queue, which would otherwise answer the queued ones 503. Connections made as the
    listener closes are refused, or dropped before their request reached the app (accepted by
    the kernel, not by the server): a load balancer stops sending before SIGTERM (preStop).
    """
    metrics_dir = tmp_path / "metrics"
    with (
        serve(
            model_bundle,
            tmp_path / "server.log",
            workers=2,
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
            **NO_LAG_SHEDDING,
        ) as server,
        Clients(f"{server.url}/predict", threads=8) as clients,
    ):
        time.sleep(1)
        server.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        exit_code = server.process.wait(timeout=30)
        drained_in = time.monotonic() - started
        time.sleep(0.2)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(metrics_dir))
    served = registry.get_sample_value(
        "carprice_http_requests_total", {"route": "/predict", "status": "200"}
    )
    answered, dropped, refused = (clients.count(kind) for kind in (200, "dropped", "refused"))
    print(
        f"\nSIGTERM: exit {exit_code} after {drained_in:.2f} s; {len(clients.outcomes)} "
        f"requests: 200 {answered}, dropped {dropped}, refused {refused}, other "
        f"{len(clients.outcomes) - answered - dropped - refused}; server counted {served:.0f}"
    )
    log = (tmp_path / "server.log").read_text()
    assert exit_code == 0
    assert "requests still in flight" not in log  # each worker's drain ended with none left
    assert served == answered  # every answer the server gave reached its client
    assert set(clients.outcomes) <= {200, "refused", "dropped"}  # no 503 from a stopped queue
    assert dropped <= 8  # one per client thread at most, caught by the listener closing
