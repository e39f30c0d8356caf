"""Admission: a lagging worker turns prediction requests away at once, and only those."""

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from inference.admission import LagMonitor

from .conftest import MakeClient


def test_lagging_needs_two_late_probes_in_a_row() -> None:
    """One stall is not overload; two late probes are; an on-time probe ends it."""
    monitor = LagMonitor(limit_ms=10)
    monitor.observe(0.050)
    assert not monitor.lagging
    monitor.observe(0.020)
    assert monitor.lagging
    monitor.observe(0.001)
    assert not monitor.lagging


def test_monitor_measures_a_blocked_loop() -> None:
    """A loop blocked longer than the limit, twice, reads as lagging; an idle one does not."""

    async def scenario() -> tuple[bool, bool]:
        monitor = LagMonitor(limit_ms=20)
        monitor.start()
        await asyncio.sleep(0.05)
        idle = monitor.lagging
        for _ in range(2):
            time.sleep(0.06)  # the loop is stuck, as under a flood of requests
            await asyncio.sleep(0.001)  # the late probe runs and re-arms
        lagging = monitor.lagging
        await monitor.stop()
        return idle, lagging

    assert asyncio.run(scenario()) == (False, True)


def test_lagging_worker_answers_predictions_503_and_serves_probes(
    make_client: MakeClient,
    model_bundle: Path,
    car_payload: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While lagging: /predict and /predict/batch get a counted 503 + Retry-After; /health 200."""
    with make_client(model_bundle) as test_client:
        lag = test_client.app.state.lag_monitor
        monkeypatch.setattr(lag, "observe", lambda _: None)  # the probes: the test decides
        lag.lagging = True
        single = test_client.post("/predict", json=car_payload)
        batch = test_client.post("/predict/batch", json={"cars": [car_payload]})
        health = test_client.get("/health")
        lag.lagging = False
        after = test_client.post("/predict", json=car_payload)
        metrics = test_client.get("/metrics").text
    for response in (single, batch):
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json() == {
            "status_code": 503,
            "detail": "server overloaded (lagging), retry later",
        }
    assert health.status_code == 200
    assert after.status_code == 200
    assert 'carprice_rejected_total{reason="lagging"} 2.0' in metrics
    assert 'carprice_http_requests_total{route="/predict",status="503"} 1.0' in metrics
    assert 'carprice_http_requests_total{route="/predict/batch",status="503"} 1.0' in metrics
