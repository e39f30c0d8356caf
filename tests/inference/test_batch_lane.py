"""The batch lane: batch requests queued behind a run are priced together, each gets its rows."""

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import pytest

from inference.batch_queue import BatchLane, RunMismatchError
from inference.model import WARMUP_CAR, Prediction
from shared_schema import Car

from .test_predict import make_predictor


def cars(first: int, count: int) -> list[Car]:
    """`count` cars whose mileages are `first`, `first + 1`, ...: a fake run prices them so."""
    return [msgspec.structs.replace(WARMUP_CAR, mileage=first + i) for i in range(count)]


def varied(first: int, count: int) -> list[Car]:
    """`count` different cars: brands, years and mileages mixed, none in sorted order."""
    brands = ("TOYOTA", "BMW", "LADA", "KIA")
    return [
        msgspec.structs.replace(
            WARMUP_CAR,
            brand=brands[(first + i) * 7 % 4],
            production_year=2000 + (first + i) * 13 % 20,
            mileage=1_000 * ((first + i) * 31 % 200),
        )
        for i in range(count)
    ]


class FakeRun:
    """A run that prices a car at its mileage, records each run's size and can hold or fail."""

    def __init__(self, *, fail_with: int | None = None) -> None:
        self.sizes: list[int] = []
        self.release = threading.Event()
        self.fail_with = fail_with

    def __call__(self, batch: Sequence[Car]) -> Prediction:
        self.sizes.append(len(batch))
        self.release.wait(5)
        if self.fail_with is not None and any(car.mileage == self.fail_with for car in batch):
            raise ValueError(f"cannot price mileage {self.fail_with}")
        prices = [float(car.mileage) for car in batch]
        return Prediction(prices, "v", [p - 1 for p in prices], [p + 1 for p in prices])


async def run_lane(
    scenario: Callable[[BatchLane], object], *, max_rows: int = 4096
) -> list[object]:
    """Run `scenario(lane)`'s tasks on a lane over a one-thread executor; their outcomes."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        lane = BatchLane(executor, max_rows=max_rows)
        tasks = scenario(lane)
        assert isinstance(tasks, list)
        # Bounded: a request the lane forgets fails the test instead of hanging it.
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)


def queue_behind_first(
    lane: BatchLane, run: FakeRun, sizes: list[int], other: FakeRun | None = None
) -> list[asyncio.Task[Prediction]]:
    """The first request starts a run (held); the others queue behind it, then all go."""
    tasks, first = [], 0
    loop = asyncio.get_running_loop()
    for index, size in enumerate(sizes):
        which = other if other is not None and index == len(sizes) - 1 else run
        tasks.append(loop.create_task(lane.price(which, cars(first, size), which)))
        first += size
    loop.call_later(0.1, run.release.set)
    if other is not None:
        loop.call_later(0.1, other.release.set)
    return tasks


def test_requests_queued_behind_a_run_go_into_the_next_run_and_get_their_own_rows() -> None:
    """Three requests behind a held run: one run of all three, each answered its own cars."""
    run = FakeRun()
    outcomes = asyncio.run(run_lane(lambda lane: queue_behind_first(lane, run, [5, 3, 4, 2])))
    assert run.sizes == [5, 9]
    first = 0
    for outcome, size in zip(outcomes, [5, 3, 4, 2], strict=True):
        assert isinstance(outcome, Prediction)
        expected = [float(first + i) for i in range(size)]
        assert outcome.prices == expected
        assert outcome.lower == [p - 1 for p in expected]
        assert outcome.upper == [p + 1 for p in expected]
        first += size


def test_a_run_takes_at_most_max_rows_and_a_bigger_request_runs_alone() -> None:
    """With 6 rows a run: 3 + 3 together, 4 alone (3 would make 7), then 7 alone (over 6)."""
    run = FakeRun()
    outcomes = asyncio.run(
        run_lane(lambda lane: queue_behind_first(lane, run, [1, 3, 3, 4, 7]), max_rows=6)
    )
    assert run.sizes == [1, 6, 4, 7]
    assert all(isinstance(outcome, Prediction) for outcome in outcomes)


def test_requests_of_different_keys_are_never_priced_together() -> None:
    """A canary's request queued behind the champion's runs alone, on its own function."""
    run, canary = FakeRun(), FakeRun()
    outcomes = asyncio.run(
        run_lane(lambda lane: queue_behind_first(lane, run, [2, 3, 4, 5], other=canary))
    )
    assert run.sizes == [2, 7]
    assert canary.sizes == [5]
    assert isinstance(outcomes[3], Prediction)
    assert outcomes[3].prices == [float(9 + i) for i in range(5)]


def test_a_failed_run_fails_its_requests_and_the_lane_goes_on() -> None:
    """The run with the bad car fails both of its requests; the next run still serves."""
    run = FakeRun(fail_with=6)

    def scenario(lane: BatchLane) -> list[asyncio.Task[Prediction]]:
        tasks = queue_behind_first(lane, run, [2, 3, 4])  # the second run: cars 2..8

        async def after_both() -> Prediction:
            await asyncio.gather(*tasks, return_exceptions=True)
            return await lane.price(run, cars(100, 2), run)

        return [*tasks, asyncio.get_running_loop().create_task(after_both())]

    outcomes = asyncio.run(run_lane(scenario))
    assert isinstance(outcomes[0], Prediction)
    for failed in outcomes[1:3]:
        assert isinstance(failed, ValueError)
        assert "mileage 6" in str(failed)
    assert isinstance(outcomes[3], Prediction)
    assert outcomes[3].prices == [100.0, 101.0]
    assert run.sizes == [2, 7, 2]


def test_a_run_short_of_rows_fails_every_request_in_it() -> None:
    """A run answering fewer prices than cars: no request gets a truncated answer."""

    def short(batch: Sequence[Car]) -> Prediction:
        return Prediction([1.0] * (len(batch) - 1), "v")

    outcomes = asyncio.run(
        run_lane(lambda lane: [asyncio.ensure_future(lane.price(short, cars(0, 3), short))])
    )
    assert isinstance(outcomes[0], RunMismatchError)
    assert "a run of 3 cars answered 2 prices" in str(outcomes[0])


async def _after(seconds: float, awaitable: object) -> object:
    await asyncio.sleep(seconds)
    assert asyncio.iscoroutine(awaitable)
    return await awaitable


def test_a_request_whose_caller_gave_up_is_not_run() -> None:
    """A queued request cancelled before its run is left out; the others behind it run."""
    run = FakeRun()

    def scenario(lane: BatchLane) -> list[asyncio.Task[Prediction]]:
        tasks = queue_behind_first(lane, run, [2, 3, 4])
        asyncio.get_running_loop().call_soon(tasks[1].cancel)
        return tasks

    outcomes = asyncio.run(run_lane(scenario))
    assert isinstance(outcomes[1], asyncio.CancelledError)
    assert run.sizes == [2, 4]
    assert isinstance(outcomes[2], Prediction)
    assert outcomes[2].prices == [5.0, 6.0, 7.0, 8.0]


def test_a_request_cancelled_during_its_run_leaves_the_others_their_rows() -> None:
    """Cancelled while its combined run goes on: the requests after it still get their own."""
    gates = [threading.Event(), threading.Event()]
    sizes: list[int] = []

    def run(batch: Sequence[Car]) -> Prediction:
        gate = gates[len(sizes)]
        sizes.append(len(batch))
        gate.wait(5)
        return Prediction([float(car.mileage) for car in batch], "v")

    def scenario(lane: BatchLane) -> list[asyncio.Task[object]]:
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[object]] = []
        first = 0
        for size in (2, 3, 4, 5):
            tasks.append(loop.create_task(lane.price(run, cars(first, size), run)))
            first += size

        async def cancel_the_third_mid_run() -> None:
            await asyncio.sleep(0)  # every request queued
            gates[0].set()
            while len(sizes) < 2:  # the second run (3 + 4 + 5 cars) has started
                await asyncio.sleep(0.005)
            tasks[2].cancel()
            gates[1].set()

        return [*tasks, loop.create_task(cancel_the_third_mid_run())]

    outcomes = asyncio.run(run_lane(scenario))
    assert sizes == [2, 12]
    assert isinstance(outcomes[2], asyncio.CancelledError)
    assert isinstance(outcomes[1], Prediction)
    assert outcomes[1].prices == [2.0, 3.0, 4.0]
    assert isinstance(outcomes[3], Prediction)
    assert outcomes[3].prices == [9.0, 10.0, 11.0, 12.0, 13.0]


def test_stop_cancels_what_is_queued_and_refuses_more() -> None:
    """Stopped: the queued requests are cancelled, a new one refused by name."""
    run = FakeRun()

    def scenario(lane: BatchLane) -> list[asyncio.Task[Prediction]]:
        tasks = queue_behind_first(lane, run, [2, 3])
        loop = asyncio.get_running_loop()
        loop.call_soon(lane.stop)
        tasks.append(loop.create_task(_after(0.01, lane.price(run, cars(0, 1), run))))
        return tasks

    outcomes = asyncio.run(run_lane(scenario))
    assert isinstance(outcomes[0], Prediction)  # the run in progress ends
    assert isinstance(outcomes[1], asyncio.CancelledError)
    assert isinstance(outcomes[2], RuntimeError)
    assert "stopped" in str(outcomes[2])
    assert run.sizes == [2]


def test_the_server_answers_each_batch_as_if_priced_alone(
    model_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real model: batches priced together get exactly the prices each gets alone."""
    predictor, _ = make_predictor(model_bundle, batch_enabled=True)
    run = predictor.run
    sizes: list[int] = []
    gate = threading.Event()

    def held_run(batch: Sequence[Car]) -> Prediction:
        sizes.append(len(batch))
        gate.wait(5)
        return run(batch)

    monkeypatch.setattr(predictor, "run", held_run)
    # The second run's 270 cars are priced in `pricing_order` (256 cars or more), brands and
    # years mixed, and put back in each request's own order.
    requests = [varied(first, size) for first, size in ((0, 65), (65, 130), (195, 140))]
    alone = [run(request) for request in requests]

    async def scenario() -> list[Prediction]:
        predictor.start()
        try:
            loop = asyncio.get_running_loop()
            tasks = [
                loop.create_task(predictor.price_many(request, f"r{i}"))
                for i, request in enumerate(requests)
            ]
            loop.call_later(0.1, gate.set)
            return [prediction for prediction, _ in await asyncio.gather(*tasks)]
        finally:
            await predictor.stop()

    together = asyncio.run(scenario())
    assert sizes == [65, 130 + 140]
    assert together == alone
    assert len(set(together[2].prices)) > 100  # cars priced differently, so order matters
