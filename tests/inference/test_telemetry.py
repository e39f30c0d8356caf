"""onnxruntime's telemetry events stay off in the server, however it was started."""

from pathlib import Path

import onnxruntime as ort
import pytest

from .conftest import MakeClient


def test_app_start_turns_onnxruntime_telemetry_events_off(
    monkeypatch: pytest.MonkeyPatch, make_client: MakeClient, model_bundle: Path
) -> None:
    """Starting the app calls onnxruntime.disable_telemetry_events once, before serving."""
    calls: list[str] = []
    monkeypatch.setattr(ort, "disable_telemetry_events", lambda: calls.append("disabled"))
    assert calls == []
    with make_client(model_bundle) as client:
        assert calls == ["disabled"]
        assert client.get("/ready").status_code == 200
