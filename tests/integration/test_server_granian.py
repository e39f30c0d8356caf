"""A real `car-serve` (Granian, 2 workers) on a free port, with bundles written by the test."""

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from shared_schema import SCHEMA_VERSION

from ..programs import program
from .conftest import NO_LAG_SHEDDING, free_port, stop

pytestmark = [pytest.mark.integration, pytest.mark.needs("car-serve")]

CAR: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "data" / "car.json").read_text("utf-8")
)
WORKERS = 2


class Server:
    def __init__(self, url: str, model_dir: Path) -> None:
        self.url = url
        self.model_dir = model_dir

    def metric(self, sample: str) -> float:
        """The value of one exposition line's sample (0 when absent)."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, bundle_writer: Callable[..., Path]
) -> Iterator[Server]:
    model_dir = bundle_writer(tmp_path_factory.mktemp("served"), model_version="1")
    port = free_port()
    env = {
        **os.environ,
        "MODEL_DIR": str(model_dir),
        "RELOAD_POLL_S": "0.2",
        "PROMETHEUS_MULTIPROC_DIR": "",
        **NO_LAG_SHEDDING,
    }
    del env["PROMETHEUS_MULTIPROC_DIR"]  # car-serve must make its own
    command = [program("car-serve"), "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", str(WORKERS), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = Server(f"http://127.0.0.1:{port}", model_dir)
    try:

        def ready() -> bool:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                return httpx.get(f"{running.url}/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        running.wait_for(ready, "the server to become ready", timeout=60)
        # Both workers loaded their model (the counter is summed over workers).
        running.wait_for(
            lambda: running.metric('carprice_model_loads_total{outcome="success"}') == WORKERS,
            "both workers to load the model",
        )
        yield running
    finally:
        stop(process)
        if process.stderr is not None:
            process.stderr.close()


def test_predictions_over_http(server: Server) -> None:
    """Single and batch predictions over HTTP equal onnxruntime run directly on the bundle."""
    import msgspec

    from shared_schema import Car
    from shared_schema.bundle import read_verified
    from shared_schema.feeds import feeds_from_cars

    cars = [CAR, {**CAR, "mileage": 10_000}, {**CAR, "engine_displacement": None}]
    served = read_verified(server.model_dir)
    session = ort.InferenceSession(served.model_bytes, providers=["CPUExecutionProvider"])
    decoded = [msgspec.convert(car, Car) for car in cars]
    (expected,) = session.run(["price"], feeds_from_cars(decoded, served.manifest.inputs))
    expected_prices = np.asarray(expected).reshape(-1).tolist()
    with httpx.Client(base_url=server.url) as client:
        singles = [client.post("/predict", json=car).json() for car in cars]
        batch = client.post("/predict/batch", json={"cars": cars}).json()
        bad = client.post("/predict", json={**CAR, "mileage": -5})
    assert [single["price_rub"] for single in singles] == pytest.approx(expected_prices, rel=1e-6)
    assert batch["prices_rub"] == [single["price_rub"] for single in singles]
    assert bad.status_code == 422
    assert "$.mileage" in bad.json()["detail"]


def test_metrics_aggregate_across_workers(server: Server) -> None:
    """/metrics counts the requests served by every worker, whichever worker answers."""
    sample = 'carprice_http_requests_total{route="/predict",status="200"}'
    before = server.metric(sample)
    sent = 40
    for _ in range(sent):  # a new connection each time, so the kernel spreads them
        assert httpx.post(f"{server.url}/predict", json=CAR, timeout=5).status_code == 200
    for _ in range(5):
        assert server.metric(sample) == before + sent
    assert server.metric('carprice_model_loads_total{outcome="success"}') >= WORKERS
    assert server.metric("carprice_model_ready") == 1.0
    assert server.metric("carprice_predicted_price_rub_count") >= sent


def hammer(url: str, stop: threading.Event, outcomes: list[tuple[int, str]]) -> None:
    with httpx.Client(base_url=url, timeout=5) as client:
        while not stop.is_set():
            try:
                response = client.post("/predict", json=CAR)
                version = response.json().get("model_version", "") if response.is_success else ""
                outcomes.append((response.status_code, version))
            except httpx.HTTPError as error:
                outcomes.append((0, repr(error)))


def test_hot_reload_under_load_then_corrupt_bundle(
    server: Server, bundle_writer: Callable[..., Path]
) -> None:
    """A reload under load fails no request; a corrupt bundle next is refused, v2 answers."""
    stop = threading.Event()
    outcomes: list[tuple[int, str]] = []
    threads = [threading.Thread(target=hammer, args=(server.url, stop, outcomes)) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        bundle_writer(server.model_dir, model_version="2", bias=-127.0)
        server.wait_for(
            lambda: server.metric('carprice_model_loads_total{outcome="success"}') >= 2 * WORKERS,
            "both workers to load version 2",
        )
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    failures = [outcome for outcome in outcomes if outcome[0] != 200]
    versions = [version for _, version in outcomes]
    assert not failures, failures[:5]
    assert len(outcomes) > 50
    assert versions[0] == "1"
    assert versions[-1] == "2"
    info = (
        'carprice_model_info{{model_name="car-price",model_version="{}",'
        f'schema_version="{SCHEMA_VERSION}"'
    )
    text = httpx.get(f"{server.url}/metrics").text
    assert re.search(re.escape(info.format("2")) + r".*\} 1\.0", text)
    assert re.search(re.escape(info.format("1")) + r".*\} 0\.0", text)

    failures_before = server.metric('carprice_model_loads_total{outcome="failure"}')
    (server.model_dir / "model.onnx.partial").write_bytes(b"definitely not onnx")
    (server.model_dir / "model.onnx.partial").replace(server.model_dir / "model.onnx")
    server.wait_for(
        lambda: (
            server.metric('carprice_model_loads_total{outcome="failure"}')
            >= failures_before + WORKERS
        ),
        "both workers to reject the corrupt bundle",
    )
    for _ in range(10):
        response = httpx.post(f"{server.url}/predict", json=CAR, timeout=5)
        assert response.status_code == 200
        assert response.json()["model_version"] == "2"
    assert json.loads(httpx.get(f"{server.url}/model").text)["model_version"] == "2"
    assert httpx.get(f"{server.url}/ready").status_code == 200
