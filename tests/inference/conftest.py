"""Fixtures for the server's tests: the app in a Litestar TestClient, on the test bundle."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from inference.app import create_app
from inference.settings import Settings
from shared_schema.serving_folder import Pointer

Client = TestClient[Any]
MakeClient = Callable[..., Client]


def _make_client(model_dir: Path, **settings: Any) -> Client:
    # Lag shedding off unless given: on a busy machine the TestClient's loop can run late
    # enough to turn a request away 503 (CI saw it once); admission has tests of its own.
    options: dict[str, Any] = {"reload_poll_s": 0.0, "shed_lag_ms": 60_000, **settings}
    return TestClient(create_app(Settings(model_dir=str(model_dir), **options)))


@pytest.fixture
def make_client() -> MakeClient:
    """A TestClient factory, `make_client(model_dir, **settings)`: no polling or shedding."""
    return _make_client


@pytest.fixture(params=[True, False], ids=["batching", "direct"])
def client(request: pytest.FixtureRequest, model_bundle: Path) -> Iterator[Client]:
    """The app on the test bundle, started, once with micro-batching and once without."""
    with _make_client(model_bundle, batch_enabled=request.param) as test_client:
        yield test_client


@pytest.fixture
def rollout_folder(
    tmp_path: Path,
    bundle_publisher: Callable[..., Pointer],
    bundle_stager: Callable[..., Pointer],
) -> Path:
    """A serving folder: champion version 1, challenger version 2 (other prices) staged."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    bundle_stager(folder, model_version="2", bias=-127.0)
    return folder
