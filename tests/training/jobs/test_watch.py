"""`car-train watch` after a promotion: it judges the new champion only within its window."""

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared_schema.serving_folder import CURRENT, Pointer
from training.cli import main
from training.core.rollout import on_trial_after_promotion

from ..conftest import relocated, write_params

#: A port nothing listens on: a watcher that asks this Prometheus fails.
NO_PROMETHEUS = "http://127.0.0.1:9"


def test_the_window_ends_post_promotion_minutes_after_the_publish() -> None:
    """On trial up to and at the window's last minute, not one second after it."""
    published = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    assert on_trial_after_promotion(published, published + timedelta(minutes=60), 60)
    assert not on_trial_after_promotion(published, published + timedelta(minutes=60, seconds=1), 60)


def _promoted(tmp_path: Path, publish: Callable[..., Pointer], written_ago_s: float) -> Path:
    """A serving folder where version 2 replaced version 1, `current` written that long ago."""
    folder = tmp_path / "model"
    publish(folder, model_version="1")
    publish(folder, model_version="2")
    stamp = time.time() - written_ago_s
    os.utime(folder / CURRENT, (stamp, stamp))
    return folder


def test_an_old_promotion_is_not_judged(
    tmp_path: Path, bundle_publisher: Callable[..., Pointer], capsys: pytest.CaptureFixture[str]
) -> None:
    """Published 61 minutes ago, no challenger: nothing on trial, Prometheus not even asked."""
    folder = _promoted(tmp_path, bundle_publisher, written_ago_s=61 * 60)
    params = write_params(relocated(tmp_path), tmp_path / "params.yaml")
    argv = ["--params", str(params), "watch", "--prometheus", NO_PROMETHEUS, "--out", str(folder)]
    assert main(argv) == 0
    verdict = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (verdict["action"], verdict["reasons"]) == ("none", [])


def test_a_fresh_promotion_is_judged(
    tmp_path: Path, bundle_publisher: Callable[..., Pointer], capsys: pytest.CaptureFixture[str]
) -> None:
    """Published a minute ago: the watcher asks Prometheus, and fails naming it when it is down."""
    folder = _promoted(tmp_path, bundle_publisher, written_ago_s=60)
    params = write_params(relocated(tmp_path), tmp_path / "params.yaml")
    argv = ["--params", str(params), "watch", "--prometheus", NO_PROMETHEUS, "--out", str(folder)]
    assert main(argv) == 1
    assert "127.0.0.1:9" in capsys.readouterr().err
