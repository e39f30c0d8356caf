"""Errors raised on the hot path are answered once each, by the app's exception handlers."""

from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from inference.batch_queue import DEADLINE, QUEUE_FULL, OverloadedError
from inference.errors import EXCEPTION_HANDLERS
from inference.reload import ModelNotReadyError

from .conftest import MakeClient

NOT_READY = {"status_code": 503, "detail": "model not loaded yet"}


def test_not_ready_without_bundle(
    make_client: MakeClient, tmp_path: Path, car_payload: dict[str, Any]
) -> None:
    """Without a bundle the process is healthy but /ready and /predict answer 503 + Retry-After."""
    with make_client(tmp_path / "missing") as test_client:
        assert test_client.get("/health").status_code == 200
        ready = test_client.get("/ready")
        assert ready.status_code == 503
        assert ready.headers["retry-after"] == "1"
        assert "no model published in" in ready.json()["detail"]
        predict = test_client.post("/predict", json=car_payload)
        assert predict.status_code == 503
        assert predict.headers["retry-after"] == "1"
        assert test_client.get("/model").status_code == 503


@pytest.mark.parametrize("batch_enabled", [True, False], ids=["batching", "direct"])
def test_every_route_needing_the_model_answers_the_same_503(
    make_client: MakeClient, tmp_path: Path, car_payload: dict[str, Any], batch_enabled: bool
) -> None:
    """/predict, /predict/batch and /model share one not-ready body, status and Retry-After."""
    with make_client(tmp_path / "missing", batch_enabled=batch_enabled) as test_client:
        responses = [
            test_client.post("/predict", json=car_payload),
            test_client.post("/predict/batch", json={"cars": [car_payload]}),
            test_client.get("/model"),
        ]
    for response in responses:
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json() == NOT_READY


@get("/not-ready")
async def _not_ready() -> None:
    raise ModelNotReadyError


@get(f"/overloaded/{QUEUE_FULL}")
async def _queue_full() -> None:
    raise OverloadedError(QUEUE_FULL)


@get(f"/overloaded/{DEADLINE}")
async def _deadline() -> None:
    raise OverloadedError(DEADLINE)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/not-ready", NOT_READY),
        (
            f"/overloaded/{QUEUE_FULL}",
            {"status_code": 503, "detail": "server overloaded (queue_full), retry later"},
        ),
        (
            f"/overloaded/{DEADLINE}",
            {"status_code": 503, "detail": "server overloaded (deadline), retry later"},
        ),
    ],
)
def test_each_error_kind_has_one_handler(path: str, body: dict[str, Any]) -> None:
    """Registered alone on an app, the handlers turn each error kind into its 503 body."""
    app = Litestar([_not_ready, _queue_full, _deadline], exception_handlers=EXCEPTION_HANDLERS)
    with TestClient(app) as test_client:
        response = test_client.get(path)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == body
