"""The batch queue: shared runs, bounded queue, deadlines, failures reaching every caller."""

import asyncio
from collections.abc import Sequence

import pytest

from inference.batch_queue import MicroBatcher, OverloadedError
from inference.metrics import Metrics
from inference.model import WARMUP_CAR, Prediction
from shared_schema import Car


def make_batcher(runs: list[int], metrics: Metrics | None = None, **options: int) -> MicroBatcher:
    def run(cars: Sequence[Car]) -> Prediction:
        runs.append(len(cars))
        return Prediction([float(car.mileage) for car in cars], "v")

    settings = {"max_rows": 4, "window_us": 0, "queue_max": 100, "deadline_ms": 1000, **options}
    return MicroBatcher(run, metrics or Metrics(), **settings)


def test_concurrent_requests_share_runs() -> None:
    """Ten concurrent requests are served in runs of at most max_rows, each with its own price."""
    runs: list[int] = []

    async def scenario() -> list[Prediction]:
        batcher = make_batcher(runs)
        batcher.start()
        cars = [msgspec_car(mileage) for mileage in range(10)]
        results = await asyncio.gather(*(batcher.predict(car) for car in cars))
        await batcher.stop()
        return results

    results = asyncio.run(scenario())
    assert results == [Prediction([float(mileage)], "v") for mileage in range(10)]
    assert sum(runs) == 10
    assert max(runs) <= 4
    assert len(runs) < 10


def test_full_queue_rejects_immediately() -> None:
    """Beyond queue_max waiting requests, a request is rejected at once as queue_full."""

    async def scenario() -> None:
        batcher = make_batcher([], queue_max=1)  # not started: nothing drains the queue
        first = asyncio.ensure_future(batcher.predict(WARMUP_CAR))
        await asyncio.sleep(0)
        with pytest.raises(OverloadedError, match="queue_full"):
            await batcher.predict(WARMUP_CAR)
        first.cancel()
        await batcher.stop()

    asyncio.run(scenario())


def test_deadline_rejects_waiting_request() -> None:
    """A request not served within its deadline is rejected as deadline, not left waiting."""

    async def scenario() -> None:
        batcher = make_batcher([], deadline_ms=20)  # not started: nothing serves it
        with pytest.raises(OverloadedError, match="deadline"):
            await batcher.predict(WARMUP_CAR)
        await batcher.stop()

    asyncio.run(scenario())


def test_run_failure_reaches_every_caller() -> None:
    """An error in the model run is raised in each request of that run, not swallowed."""

    def failing(cars: Sequence[Car]) -> Prediction:
        raise RuntimeError("boom")

    async def scenario() -> None:
        batcher = MicroBatcher(
            failing, Metrics(), max_rows=4, window_us=100, queue_max=10, deadline_ms=1000
        )
        batcher.start()
        results = await asyncio.gather(
            batcher.predict(WARMUP_CAR), batcher.predict(WARMUP_CAR), return_exceptions=True
        )
        await batcher.stop()
        assert all(isinstance(result, RuntimeError) for result in results)

    asyncio.run(scenario())


def test_rejections_are_counted_by_reason() -> None:
    """Each rejected request counts once in carprice_rejected_total, under its reason."""
    metrics = Metrics()

    def rejected(reason: str) -> float | None:
        return metrics.registry.get_sample_value("carprice_rejected_total", {"reason": reason})

    async def scenario() -> None:
        # Not started: nothing drains the queue, so the first request waits out its deadline.
        batcher = make_batcher([], metrics, queue_max=1, deadline_ms=50)
        first = asyncio.ensure_future(batcher.predict(WARMUP_CAR))
        await asyncio.sleep(0)
        with pytest.raises(OverloadedError, match="queue_full"):
            await batcher.predict(WARMUP_CAR)
        with pytest.raises(OverloadedError, match="deadline"):
            await first
        await batcher.stop()

    asyncio.run(scenario())
    assert rejected("queue_full") == 1.0
    assert rejected("deadline") == 1.0
    assert metrics.registry.get_sample_value("carprice_queue_depth") == 0.0


def msgspec_car(mileage: int) -> Car:
    import msgspec

    return msgspec.structs.replace(WARMUP_CAR, mileage=mileage)
