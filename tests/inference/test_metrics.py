"""The server's metrics: no global state touched by constructing `Metrics`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, values

from inference.metrics import Metrics
from inference.multiprocess import MULTIPROC_ENV


def _global_state() -> tuple[object, set[str]]:
    return values.ValueClass, {family.name for family in REGISTRY.collect()}


def test_constructing_metrics_leaves_global_state_alone() -> None:
    """Two Metrics in one process change neither prometheus_client's value class nor REGISTRY."""
    before = _global_state()
    first, second = Metrics(), Metrics()
    first.requests.labels("/predict", "200").inc()
    assert _global_state() == before
    assert first.multiprocess is second.multiprocess is False
    sample = ("carprice_http_requests_total", {"endpoint": "/predict", "status": "200"})
    assert first.registry.get_sample_value(*sample) == 1.0
    assert second.registry.get_sample_value(*sample) is None


def test_multiprocess_dir_set_after_import_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A multiprocess dir named after prometheus_client's import fails loudly, switching nothing."""
    before = _global_state()
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    with pytest.raises(RuntimeError, match="set after prometheus_client was imported"):
        Metrics()
    assert _global_state() == before


WORKER = """
from inference.metrics import Metrics

metrics = Metrics()
assert metrics.multiprocess
metrics.requests.labels("/predict", "200").inc()
"""


def test_workers_started_with_the_dir_share_their_samples(tmp_path: Path) -> None:
    """Processes started with the dir set write samples that one collector merges."""
    env = {**os.environ, MULTIPROC_ENV: str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", WORKER], env=env, check=True, timeout=60)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    sample = ("carprice_http_requests_total", {"endpoint": "/predict", "status": "200"})
    assert registry.get_sample_value(*sample) == 2.0
