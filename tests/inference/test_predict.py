"""Predict: cars priced on the current model, through the batch queue or not, each run recorded."""

import asyncio
import threading
import time
from pathlib import Path

import msgspec
import pytest

from inference.challenger import ChallengerHolder
from inference.metrics import Metrics
from inference.model import WARMUP_CAR, Prediction
from inference.predict import Predictor
from inference.rating import NOT_ASKED
from inference.reload import ModelHolder, ModelNotReadyError
from inference.rollout_metrics import RolloutMetrics
from inference.settings import Settings
from shared_schema import Car

LADA = msgspec.structs.replace(WARMUP_CAR, brand="LADA")  # a brand the test model never saw


def make_predictor(model_dir: Path, *, batch_enabled: bool) -> tuple[Predictor, Metrics]:
    settings = Settings(model_dir=str(model_dir), reload_poll_s=0.0, batch_enabled=batch_enabled)
    metrics = Metrics()
    holder = ModelHolder(settings, metrics)
    if model_dir.exists():
        asyncio.run(holder.reload())
    rollout = RolloutMetrics(metrics)
    challenger = ChallengerHolder(settings, rollout)
    return Predictor(settings, holder, metrics, challenger, rollout), metrics


def sample(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float | None:
    return metrics.registry.get_sample_value(name, labels or {})


def test_run_records_rows_prices_and_unknown_categories(model_bundle: Path) -> None:
    """A run observes its row count once, each price, and the categories the model never saw."""
    predictor, metrics = make_predictor(model_bundle, batch_enabled=False)
    assert sample(metrics, "carprice_predicted_price_rub_count") == 0.0  # warm-up not counted
    prediction = predictor.run([WARMUP_CAR, LADA, WARMUP_CAR])
    prices = prediction.prices
    assert prediction.version == "1"
    assert prediction.lower is None  # the test bundle has no interval
    assert len(prices) == 3
    assert sample(metrics, "carprice_batch_rows_count") == 1.0
    assert sample(metrics, "carprice_batch_rows_sum") == 3.0
    assert sample(metrics, "carprice_predicted_price_rub_count") == 3.0
    assert sample(metrics, "carprice_predicted_price_rub_sum") == pytest.approx(sum(prices))
    assert sample(metrics, "carprice_unknown_category_total", {"field": "brand"}) == 1.0


@pytest.mark.parametrize("batch_enabled", [True, False], ids=["batching", "direct"])
def test_one_and_many_price_like_a_run(model_bundle: Path, batch_enabled: bool) -> None:
    """price_one and price_many return the run's prices; nothing stays in flight afterwards."""
    predictor, metrics = make_predictor(model_bundle, batch_enabled=batch_enabled)
    cars: list[Car] = [WARMUP_CAR, LADA]

    async def scenario() -> tuple[list[Prediction], Prediction]:
        predictor.start()
        try:
            singles = await asyncio.gather(*(predictor.price_one(car, "r1") for car in cars))
            many, ratings = await predictor.price_many(cars, "r2")
            assert {rating for _, rating in singles} == {ratings} == {NOT_ASKED}  # no asking price
            return [single for single, _ in singles], many
        finally:
            await predictor.stop()

    singles, many = asyncio.run(scenario())
    expected = predictor.run(cars)
    assert singles == [expected.row(0), expected.row(1)]
    assert many == expected
    assert expected.version == "1"
    assert sample(metrics, "carprice_inflight_requests") == 0.0


@pytest.mark.parametrize("batch_enabled", [True, False], ids=["batching", "direct"])
def test_without_a_model_both_paths_raise_not_ready(tmp_path: Path, batch_enabled: bool) -> None:
    """Before a bundle loads, pricing raises ModelNotReadyError (a 503), through the queue too."""
    predictor, metrics = make_predictor(tmp_path / "missing", batch_enabled=batch_enabled)

    async def scenario() -> None:
        predictor.start()
        try:
            with pytest.raises(ModelNotReadyError):
                await predictor.price_one(WARMUP_CAR, "r1")
            with pytest.raises(ModelNotReadyError):
                await predictor.price_many([WARMUP_CAR], "r2")
        finally:
            await predictor.stop()

    asyncio.run(scenario())
    assert sample(metrics, "carprice_inflight_requests") == 0.0
    assert sample(metrics, "carprice_predicted_price_rub_count") == 0.0


@pytest.mark.parametrize("batch_enabled", [True, False], ids=["batching", "direct"])
def test_a_big_batch_runs_off_the_event_loop(
    model_bundle: Path, batch_enabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a batch over `offload_rows` runs, single cars are priced; a small batch runs inline."""
    predictor, _ = make_predictor(model_bundle, batch_enabled=batch_enabled)
    run = predictor.run
    threads: dict[int, str] = {}

    def slow_run(cars: list[Car]) -> Prediction:
        threads[len(cars)] = threading.current_thread().name
        if len(cars) > 64:
            time.sleep(0.5)  # like onnxruntime on a big batch: the GIL released meanwhile
        return run(cars)

    monkeypatch.setattr(predictor, "run", slow_run)

    async def scenario() -> tuple[float, float]:
        predictor.start()
        try:
            started = time.perf_counter()
            batch = asyncio.create_task(predictor.price_many([WARMUP_CAR] * 65, "big"))
            await asyncio.sleep(0.05)  # the batch is running
            await predictor.price_one(LADA, "single")
            single_done = time.perf_counter() - started
            await batch
            batch_done = time.perf_counter() - started
            await predictor.price_many([WARMUP_CAR] * 64, "small")
            return single_done, batch_done
        finally:
            await predictor.stop()

    single_done, batch_done = asyncio.run(scenario())
    assert single_done < 0.4 < batch_done  # the single car did not wait for the batch
    assert threads[65].startswith("batch-run")
    assert threads[64] == "MainThread"
