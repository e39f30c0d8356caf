"""The server's metrics: what a request records, and no global state touched by `Metrics`."""

import math
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, multiprocess, values

from inference.metrics import PRICE_BUCKETS, Metrics, observe_all
from inference.multiprocess import MULTIPROC_ENV
from shared_schema.bundle import MANIFEST_FILE

from ..conftest import publish_bundle
from .conftest import Client, MakeClient


def test_metrics_exposition(client: Client, car_payload: dict[str, Any]) -> None:
    """GET /metrics exposes the contract's metric names with the requests just served."""
    client.post("/predict", json=car_payload)
    client.post("/predict", json={**car_payload, "brand": "LADA"})
    client.post("/predict", json={**car_payload, "mileage": -1})
    text = client.get("/metrics").text
    assert 'carprice_http_requests_total{route="/predict",status="200"} 2.0' in text
    assert 'carprice_http_requests_total{route="/predict",status="422"} 1.0' in text
    assert 'carprice_http_request_duration_seconds_bucket{le="0.01",route="/predict"}' in text
    assert 'carprice_unknown_category_total{field="brand"} 1.0' in text
    assert "carprice_predicted_price_rub_count 2.0" in text  # warm-up runs are not counted
    assert 'carprice_model_loads_total{outcome="success"} 1.0' in text
    assert "carprice_model_ready 1.0" in text
    assert 'carprice_model_info{model_name="car-price",model_version="1"' in text
    for name in ("carprice_batch_rows", "carprice_queue_depth", "carprice_inflight_requests"):
        assert name in text


def test_unrouted_requests_are_counted(client: Client) -> None:
    """A path no route matches (404) and a method a route lacks (405) are counted too."""
    assert client.get("/no-such-path").status_code == 404
    assert client.get("/predict").status_code == 405
    assert client.delete("/health").status_code == 405
    text = client.get("/metrics").text
    assert 'carprice_http_requests_total{route="unmatched",status="404"} 1.0' in text
    assert 'carprice_http_requests_total{route="unmatched",status="405"} 2.0' in text
    assert 'carprice_http_request_duration_seconds_count{route="unmatched"} 3.0' in text


def _global_state() -> tuple[object, set[str]]:
    return values.ValueClass, {family.name for family in REGISTRY.collect()}


def test_constructing_metrics_leaves_global_state_alone() -> None:
    """Two Metrics in one process change neither prometheus_client's value class nor REGISTRY."""
    before = _global_state()
    first, second = Metrics(), Metrics()
    first.requests.labels("/predict", "200").inc()
    assert _global_state() == before
    assert first.multiprocess is second.multiprocess is False
    sample = ("carprice_http_requests_total", {"route": "/predict", "status": "200"})
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
    sample = ("carprice_http_requests_total", {"route": "/predict", "status": "200"})
    assert registry.get_sample_value(*sample) == 2.0


def test_model_creation_time_is_exported(client: Client) -> None:
    """The served bundle's created_at is exported as Unix seconds (the age alert's input)."""
    text = client.get("/metrics").text
    found = re.search(r"^carprice_model_created_timestamp_seconds (\S+)$", text, re.MULTILINE)
    assert found is not None
    # tests/conftest.py's write_bundle stamps 2026-01-01T00:00:00+00:00.
    assert float(found.group(1)) == datetime(2026, 1, 1, tzinfo=UTC).timestamp()


def test_model_age_without_created_at_is_when_the_publisher_wrote_it(
    make_client: MakeClient, tmp_path: Path
) -> None:
    """A published bundle without created_at is dated by its manifest's write (the age alert)."""
    pointer = publish_bundle(tmp_path, created_at=None)
    written = (tmp_path / pointer.bundle / MANIFEST_FILE).stat().st_mtime_ns / 1e9
    with make_client(tmp_path) as test_client:
        text = test_client.get("/metrics").text
    found = re.search(r"^carprice_model_created_timestamp_seconds (\S+)$", text, re.MULTILINE)
    assert found is not None
    assert float(found.group(1)) == pytest.approx(written, abs=1e-3)


def _price_histograms(registry: CollectorRegistry) -> tuple[Histogram, Histogram]:
    return (
        Histogram("one_by_one", "observe", buckets=PRICE_BUCKETS, registry=registry),
        Histogram("all_at_once", "observe_all", buckets=PRICE_BUCKETS, registry=registry),
    )


def _buckets(registry: CollectorRegistry, name: str) -> dict[str, float]:
    return {
        sample.labels["le"]: sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == f"{name}_bucket"
    }


# Every bound itself (a bucket's bound is inclusive), below the first, past the last, infinities.
_AMOUNTS = [*PRICE_BUCKETS, *(b * 1.0001 for b in PRICE_BUCKETS), 0.0, -5.0, 1e12, float("inf")]


@pytest.mark.parametrize(
    "amounts",
    [
        _AMOUNTS,
        [float("-inf"), 3e5, 3e5, 3e5],
        [1.5e6, 250_000.0, 7.25e6, 99_999.5, 1e5],
        [float("inf"), 1e6, float("-inf")],
        [123_456.0],
        [],
    ],
    ids=["bounds", "repeats", "finite", "both infinities", "one", "none"],
)
def test_observe_all_counts_as_observing_one_by_one(amounts: list[float]) -> None:
    """Every bucket, the count and the sum come out as `observe` leaves them, amount by amount."""
    registry = CollectorRegistry()
    one_by_one, all_at_once = _price_histograms(registry)
    for amount in amounts:
        one_by_one.observe(amount)
    observe_all(all_at_once, amounts)
    assert _buckets(registry, "all_at_once") == _buckets(registry, "one_by_one")
    assert registry.get_sample_value("all_at_once_count") == len(amounts)
    expected_sum = registry.get_sample_value("one_by_one_sum")
    got_sum = registry.get_sample_value("all_at_once_sum")
    assert expected_sum is not None
    assert got_sum is not None
    if math.isnan(expected_sum):  # +inf and -inf observed together
        assert math.isnan(got_sum)
    else:
        assert got_sum == pytest.approx(expected_sum, rel=1e-12)


def test_observe_all_leaves_a_nan_out_of_every_bucket_as_observe_does() -> None:
    """A NaN price lands in no bucket and makes the sum NaN, one by one or all at once."""
    registry = CollectorRegistry()
    one_by_one, all_at_once = _price_histograms(registry)
    for amount in (2e6, float("nan")):
        one_by_one.observe(amount)
    observe_all(all_at_once, [2e6, float("nan")])
    assert _buckets(registry, "all_at_once") == _buckets(registry, "one_by_one")
    assert registry.get_sample_value("all_at_once_count") == 1.0
    assert math.isnan(registry.get_sample_value("all_at_once_sum") or 0.0)


def test_observe_all_on_a_labelled_histogram_fails_as_observe_does() -> None:
    """A histogram with labels but none chosen has no buckets: `observe`'s own error stands."""
    parent = Histogram("labelled", "x", ["field"], registry=CollectorRegistry())
    with pytest.raises(ValueError, match="missing label values") as by_observe:
        parent.observe(1.0)
    with pytest.raises(ValueError, match="missing label values") as by_observe_all:
        observe_all(parent, [1.0, 2.0])
    assert str(by_observe_all.value) == str(by_observe.value)


OBSERVE_WORKER = """
from prometheus_client import CollectorRegistry, Histogram, values
from inference.metrics import PRICE_BUCKETS, observe_all

assert getattr(values.ValueClass, "_multiprocess", False)
registry = CollectorRegistry()
one_by_one = Histogram("one_by_one", "observe", buckets=PRICE_BUCKETS, registry=registry)
all_at_once = Histogram("all_at_once", "observe_all", buckets=PRICE_BUCKETS, registry=registry)
amounts = [float(a) for a in range(0, 60_000_000, 37_501)] + [1e5, 5e7, 7.5e6]
for amount in amounts:
    one_by_one.observe(amount)
observe_all(all_at_once, amounts)
"""


def test_observe_all_in_multiprocess_mode_merges_like_observe(tmp_path: Path) -> None:
    """In a worker writing memory-mapped files, both ways merge to the same samples."""
    env = {**os.environ, MULTIPROC_ENV: str(tmp_path)}
    subprocess.run([sys.executable, "-c", OBSERVE_WORKER], env=env, check=True, timeout=60)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    expected = _buckets(registry, "one_by_one")
    assert expected["+Inf"] == 1_603.0  # every amount: 1,600 from the range, 3 more
    assert _buckets(registry, "all_at_once") == expected
    expected_sum = registry.get_sample_value("one_by_one_sum")
    assert registry.get_sample_value("all_at_once_sum") == pytest.approx(expected_sum, rel=1e-12)
