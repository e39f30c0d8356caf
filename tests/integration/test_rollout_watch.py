"""The rollout against real processes: car-serve under Granian, a real Prometheus, the watcher.

A canary whose graph is slower (same prices, 300 more matrix products a row: its p95 more
than doubles) answers half the requests, sent through the pod's HAProxy; `car-train watch`
reads both versions' p95 from Prometheus, withdraws the challenger, and the server answers
with the champion only again.
A healthy canary is stepped up its schedule by the same watcher instead, and a rollback fires
its alert in Prometheus from the servers' own metrics.
"""

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared_schema.serving_folder import CHALLENGER, Pointer
from training.cli import main
from training.io import serving

from ..proxy_bound import in_flight_per_worker
from ..training.conftest import merged, relocated, write_params
from .conftest import haproxy, serve, wait_for
from .prometheus import MONITORING, running

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.needs("car-serve", "prometheus", "haproxy"),
]

CAR = json.loads((Path(__file__).parents[1] / "data" / "car.json").read_text("utf-8"))


def _prometheus_config(target: str, *, alerts: bool = False) -> dict[str, Any]:
    """Scrape one server every second; with `alerts`, evaluate monitoring/'s alert rules."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "car-price", "static_configs": [{"targets": [target]}]}],
    }
    if alerts:
        config["rule_files"] = [str(MONITORING / "rules" / "alerts.yml")]
    return config


def test_a_slow_canary_is_withdrawn_automatically(
    tmp_path: Path,
    bundle_publisher: Any,
    bundle_stager: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """p95 of the canary > 1.5 x the champion's: withdrawn, and only the champion answers."""
    folder = tmp_path / "model"
    champion: Pointer = bundle_publisher(folder, model_version="1")
    bundle_stager(folder, model_version="2", slow_steps=300)
    params = write_params(relocated(tmp_path), tmp_path / "params.yaml")
    with (
        serve(folder, tmp_path / "server.log", CANARY_SHARE="0.5", RELOAD_POLL_S="0.5") as server,
        # Clients through the pod's proxy, as in production; Prometheus scrapes the server.
        haproxy(
            f"127.0.0.1:{server.port}",
            tmp_path / "haproxy.log",
            max_in_flight=in_flight_per_worker(),
        ) as proxy,
        running(_prometheus_config(f"127.0.0.1:{server.port}"), tmp_path) as prometheus,
        httpx.Client(base_url=proxy, timeout=5) as client,
    ):
        # The counters' starting values scraped first: rate() then sees the traffic's increase.
        wait_for(lambda: bool(prometheus.query("up == 1")), "the first scrape")
        answers = [client.post("/predict", json=CAR) for _ in range(300)]
        # On a loaded machine a worker whose loop lags sheds (503) a few: not answers.
        assert {answer.status_code for answer in answers} <= {200, 503}
        answered = [answer for answer in answers if answer.status_code == 200]
        assert {answer.headers["X-Model-Version"] for answer in answered} == {"1", "2"}

        def both_timed() -> bool:
            # Two scrapes after the traffic: rate() has a slope for both versions.
            query = "count(rate(carprice_version_request_duration_seconds_count[5m]) > 0)"
            found = prometheus.query(query)
            return bool(found) and float(found[0]["value"][1]) == 2

        wait_for(both_timed, "Prometheus to see both versions answer")
        capsys.readouterr()
        started = time.monotonic()
        argv = ["--params", str(params), "watch", "--prometheus", prometheus.url]
        assert main([*argv, "--out", str(folder)]) == 0
        verdict = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert verdict["action"] == "withdrawn", verdict
        assert "version 2: p95" in verdict["reasons"][0]
        assert not (folder / CHALLENGER).exists()

        def champion_only() -> bool:
            answers = [
                client.post("/predict", json=CAR).headers["X-Model-Version"] for _ in range(20)
            ]
            return set(answers) == {champion.model_version}

        wait_for(champion_only, "the server to answer with the champion only")
        rollback_s = time.monotonic() - started
        figures = verdict["figures"]
        print(
            f"canary p95 {figures['candidate_p95_s'] * 1e3:.2f} ms vs champion "
            f"{figures['baseline_p95_s'] * 1e3:.2f} ms; withdrawn and champion-only after "
            f"{rollback_s:.2f} s"
        )
        assert rollback_s < 10


def test_a_healthy_canary_steps_up_its_schedule(
    tmp_path: Path, bundle_publisher: Any, bundle_stager: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Share 0.5; kept there until both versions answered enough; then 1; the server follows."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    bundle_stager(folder, model_version="2", bias=-127.0)  # other, finite prices
    steps = [{"share": 0.5, "hold_minutes": 0}, {"share": 1.0, "hold_minutes": 0}]
    # The latency rule off: two sub-millisecond p95s of the same graph differ by more than
    # x1.5 on a busy machine, and the slow-canary test above covers the rule.
    rollout = {"canary_steps": steps, "max_p95_ratio": 1000.0, "min_canary_answers": 20}
    raw = merged(relocated(tmp_path), rollout=rollout)
    params = write_params(raw, tmp_path / "params.yaml")
    with (
        serve(folder, tmp_path / "server.log", RELOAD_POLL_S="0.2") as server,
        running(_prometheus_config(f"127.0.0.1:{server.port}"), tmp_path) as prometheus,
        httpx.Client(base_url=server.url, timeout=5) as client,
    ):

        def versions() -> set[str]:
            answers = [client.post("/predict", json=CAR) for _ in range(40)]
            return {answer.headers["X-Model-Version"] for answer in answers}

        def watch() -> float:
            capsys.readouterr()
            argv = ["--params", str(params), "watch", "--prometheus", prometheus.url]
            assert main([*argv, "--out", str(folder)]) == 0
            verdict = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
            assert verdict["action"] == "none", verdict
            share: float = verdict["canary"]["share"]
            return share

        def answered(version: str) -> bool:
            query = (
                "sum(increase(carprice_version_request_duration_seconds_count"
                f'{{model_version="{version}"}}[5m])) >= 20'
            )
            return bool(prometheus.query(query))

        assert versions() == {"1"}  # CANARY_SHARE is 0 and there is no file yet
        assert watch() == 0.5
        assert watch() == 0.5  # its step held, but version 2 answered nobody yet: no evidence
        wait_for(lambda: versions() == {"1", "2"}, "answers from both versions")
        # increase() counts from a series' first scrape on: answers keep coming meanwhile.
        wait_for(
            lambda: bool(versions()) and answered("1") and answered("2"),
            "Prometheus to count 20 answers of each version",
            30,
        )
        assert watch() == 1.0
        wait_for(lambda: versions() == {"2"}, "answers from version 2 only")


def test_a_rollback_fires_its_alert(tmp_path: Path, bundle_publisher: Any) -> None:
    """Version 2 (a newer bundle) rolled back to 1: CarPriceModelRolledBack fires, a ticket."""
    folder = tmp_path / "model"
    january, february = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    bundle_publisher(folder, model_version="1", created_at=january.isoformat())
    bundle_publisher(folder, model_version="2", created_at=february.isoformat())
    firing = 'ALERTS{alertname="CarPriceModelRolledBack", alertstate="firing"}'
    with (
        serve(folder, tmp_path / "server.log", RELOAD_POLL_S="0.2") as server,
        running(
            _prometheus_config(f"127.0.0.1:{server.port}", alerts=True), tmp_path
        ) as prometheus,
    ):
        newer = f"carprice_model_created_timestamp_seconds == {february.timestamp():.0f}"
        wait_for(lambda: bool(prometheus.query(newer)), "a scrape of version 2")
        time.sleep(2)  # two rule evaluations on version 2 alone
        assert prometheus.query(firing) == []
        serving.rollback(folder)
        wait_for(lambda: bool(prometheus.query(firing)), "the rollback alert", 30)
        (alert,) = prometheus.query(firing)
    assert (alert["metric"]["job"], alert["metric"]["severity"]) == ("car-price", "ticket")
