"""Hot reload: the admin endpoint and the model-dir poller swap bundles; bad ones are refused."""

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import MakeClient


def test_reload_endpoint_swaps_and_rejects(
    make_client: MakeClient,
    tmp_path: Path,
    bundle_writer: Callable[..., Path],
    car_payload: dict[str, Any],
) -> None:
    """A valid new bundle replaces the model; a corrupt one is refused and the old one serves."""
    token = {"authorization": "Bearer " + "t" * 32}
    bundle_writer(tmp_path, model_version="1")
    with make_client(tmp_path, reload_token="t" * 32) as test_client:
        before = test_client.post("/predict", json=car_payload).json()
        bundle_writer(tmp_path, model_version="2", bias=-127.0)
        reloaded = test_client.post("/admin/reload", headers=token)
        assert reloaded.json() == {"reloaded": True, "model_version": "2", "detail": None}
        after = test_client.post("/predict", json=car_payload).json()
        assert after["model_version"] == "2"
        assert after["price_rub"] == pytest.approx(before["price_rub"] * math.exp(0.6), rel=1e-5)

        (tmp_path / "model.onnx").write_bytes(b"not a model")
        refused = test_client.post("/admin/reload", headers=token)
        assert refused.status_code == 409
        assert "sha256" in refused.json()["detail"]
        assert test_client.post("/predict", json=car_payload).json() == after
        assert test_client.get("/model").json()["model_version"] == "2"
        metrics = test_client.get("/metrics").text
        assert 'carprice_model_loads_total{outcome="failure"} 1.0' in metrics
        assert 'carprice_model_info{model_name="car-price",model_version="1"' in metrics


def test_poller_picks_up_new_bundle(
    make_client: MakeClient,
    tmp_path: Path,
    bundle_writer: Callable[..., Path],
    car_payload: dict[str, Any],
) -> None:
    """With polling on, a new bundle in the model dir is served without any request to reload."""
    bundle_writer(tmp_path, model_version="1")
    with make_client(tmp_path, reload_poll_s=0.05) as test_client:
        assert test_client.post("/predict", json=car_payload).json()["model_version"] == "1"
        bundle_writer(tmp_path, model_version="2")
        deadline = time.monotonic() + 10
        while test_client.get("/ready").json()["model_version"] != "2":
            assert time.monotonic() < deadline, "the new bundle was never loaded"
            time.sleep(0.05)
        assert test_client.post("/predict", json=car_payload).json()["model_version"] == "2"
