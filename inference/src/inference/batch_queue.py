"""The batch queues: concurrent requests in one worker share model runs.

`MicroBatcher`: single cars, coalesced on the event loop. Bounded, with a deadline per request:
overload is an `OverloadedError` (a 503, see `errors`), not a growing wait.

`BatchLane`: batch requests on the worker's one batch thread; those that queue behind a run go
into the next run together.
"""

import asyncio
import collections
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import Final

from inference.background import cancel
from inference.metrics import Metrics
from inference.model import Prediction
from shared_schema import Car

RunBatch = Callable[[Sequence[Car]], Prediction]

QUEUE_FULL: Final = "queue_full"
DEADLINE: Final = "deadline"


class OverloadedError(Exception):
    """A request the server declines to serve now (`reason`: queue_full or deadline)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class _Pending:
    car: Car
    future: asyncio.Future[Prediction]
    deadline: float


class MicroBatcher:
    """Coalesces queued single-car requests into runs of up to `max_rows` rows.

    There is no fixed wait: when the batcher wakes it takes whatever is queued. An optional
    window lets it wait a little longer for company. The queue is bounded and every request
    has a deadline, so overload turns into fast 503s instead of growing latency.
    """

    def __init__(
        self,
        run: RunBatch,
        metrics: Metrics,
        *,
        max_rows: int,
        window_us: int,
        queue_max: int,
        deadline_ms: int,
    ) -> None:
        self._run = run
        self._metrics = metrics
        self._max_rows = max_rows
        self._window_s = window_us / 1e6
        self._queue_max = queue_max
        self._deadline_s = deadline_ms / 1e3
        self._queue: collections.deque[_Pending] = collections.deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the batching task on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="micro-batcher")

    async def stop(self) -> None:
        """Stop the batching task and reject whatever is still queued."""
        await cancel(self._task)
        self._task = None
        while self._queue:
            pending = self._queue.popleft()
            self._metrics.queue_depth.dec()
            if not pending.future.done():
                pending.future.set_exception(OverloadedError(DEADLINE))

    async def predict(self, car: Car) -> Prediction:
        """The prediction for one car, computed together with its neighbours.

        Raises:
            OverloadedError: The queue is full, or the deadline passed before the car was served;
                counted in `carprice_rejected_total` by reason.
        """
        try:
            if len(self._queue) >= self._queue_max:
                raise OverloadedError(QUEUE_FULL)
            loop = asyncio.get_running_loop()
            future: asyncio.Future[Prediction] = loop.create_future()
            self._queue.append(_Pending(car, future, loop.time() + self._deadline_s))
            self._metrics.queue_depth.inc()
            self._wakeup.set()
            try:
                async with asyncio.timeout(self._deadline_s):
                    return await future
            except TimeoutError:
                raise OverloadedError(DEADLINE) from None
        except OverloadedError as error:  # raised above, or set on the future by _take or stop
            self._metrics.rejected.labels(error.reason).inc()
            raise

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                if self._window_s and len(self._queue) < self._max_rows:
                    await asyncio.sleep(self._window_s)
                batch = self._take(loop.time())
                if batch:
                    self._run_batch(batch)
                # Let the handlers that arrived meanwhile enqueue before the next run.
                await asyncio.sleep(0)

    def _take(self, now: float) -> list[_Pending]:
        batch: list[_Pending] = []
        while self._queue and len(batch) < self._max_rows:
            pending = self._queue.popleft()
            self._metrics.queue_depth.dec()
            if pending.future.done():  # the caller gave up (deadline or disconnect)
                continue
            if pending.deadline <= now:
                pending.future.set_exception(OverloadedError(DEADLINE))
                continue
            batch.append(pending)
        return batch

    def _run_batch(self, batch: list[_Pending]) -> None:
        # The run stays on the loop thread: for the few-row runs micro-batching makes, a hand-off
        # to a worker thread costs more than the run itself (timings: README, "Serving").
        try:
            result = self._run([pending.car for pending in batch])
        except Exception as error:  # the caller's handler turns it into a response
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        for index, pending in enumerate(batch):
            if not pending.future.done():
                pending.future.set_result(result.row(index))


@dataclass(slots=True)
class _Batch:
    run: RunBatch
    key: object
    cars: Sequence[Car]
    future: asyncio.Future[Prediction]


class RunMismatchError(RuntimeError):
    """A run answered another number of rows than it was given cars."""


class BatchLane:
    """Batch requests on one worker thread, those queued behind a run priced in one run.

    A request waits only while the thread is busy (it would wait then anyway). When a run
    ends, the requests queued meanwhile go into the next run together, in arrival order, up to
    `max_rows` cars (a larger request runs alone) and only with the same `key` (the champion,
    or one challenger model), and each gets its own rows back. A longer run costs less per
    car: onnxruntime walks the forest tree by tree over blocks of rows, and the grouped order
    (`inference.model.pricing_order`) finds more like cars among more rows. Measured through
    `LoadedModel.run`, one core, 2026-12-07: 15.95, 15.20 and 13.56 µs per car for runs of
    1,000, 2,000 and 4,000 held-out cars; over HTTP (4 clients posting 1,000-car batches back
    to back, one worker on one core) 1.10x the rows/s of one run per request (median of eight
    paired rounds, every round faster). The costs: a request that would have run next alone
    waits for the cars queued behind it, at most `max_rows` in all; a run that fails fails
    every request in it; onnxruntime keeps the memory of the largest run (`Settings`).
    """

    def __init__(self, executor: Executor, *, max_rows: int) -> None:
        self._executor = executor
        self._max_rows = max_rows
        self._queue: collections.deque[_Batch] = collections.deque()
        self._running = False
        self._stopped = False

    async def price(self, run: RunBatch, cars: Sequence[Car], key: object) -> Prediction:
        """`run(cars)` on the lane's thread, alone or with queued requests of the same `key`.

        Requests of one `key` must be priced alike by each other's `run` (one model).

        Raises:
            RuntimeError: The lane is stopped.
            RunMismatchError: The run answered another number of rows than it had cars.
            Exception: Whatever the run raised.
        """
        if self._stopped:
            raise RuntimeError("the batch lane is stopped")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Prediction] = loop.create_future()
        self._queue.append(_Batch(run, key, cars, future))
        self._start(loop)
        return await future

    def stop(self) -> None:
        """Cancel what is queued; a run in progress ends as its thread lets it."""
        self._stopped = True
        while self._queue:
            self._queue.popleft().future.cancel()

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the next run unless one is going; fail what cannot be started, drain on."""
        while not self._running and (taken := self._take()):
            cars = taken[0].cars
            if len(taken) > 1:
                cars = [car for batch in taken for car in batch.cars]
            try:
                running = loop.run_in_executor(self._executor, taken[0].run, cars)
            except Exception as error:  # the thread is shut down (the worker is stopping)
                for batch in taken:
                    batch.future.set_exception(error)
                continue
            self._running = True
            running.add_done_callback(partial(self._finished, loop, taken, len(cars)))

    def _take(self) -> list[_Batch]:
        """The requests for the next run: the first still waiting, and those that fit with it."""
        taken: list[_Batch] = []
        rows = 0
        while self._queue:
            batch = self._queue[0]
            if batch.future.done():  # its caller gave up: its task was cancelled
                self._queue.popleft()
                continue
            if taken and (batch.key != taken[0].key or rows + len(batch.cars) > self._max_rows):
                break
            taken.append(self._queue.popleft())
            rows += len(batch.cars)
        return taken

    def _finished(
        self,
        loop: asyncio.AbstractEventLoop,
        taken: list[_Batch],
        rows: int,
        running: asyncio.Future[Prediction],
    ) -> None:
        self._running = False
        if running.cancelled():
            for batch in taken:
                batch.future.cancel()
        else:
            error = running.exception()
            if error is None and len(running.result().prices) != rows:
                error = RunMismatchError(
                    f"a run of {rows} cars answered {len(running.result().prices)} prices"
                )
            if error is not None:
                for batch in taken:
                    if not batch.future.done():
                        batch.future.set_exception(error)
            else:
                self._answer(taken, running.result())
        if not self._stopped:
            self._start(loop)

    @staticmethod
    def _answer(taken: list[_Batch], prediction: Prediction) -> None:
        """Each request's own rows of the run, in the order they were put together."""
        start = 0
        for batch in taken:
            stop = start + len(batch.cars)
            if not batch.future.done():
                batch.future.set_result(
                    prediction if len(taken) == 1 else prediction.rows(start, stop)
                )
            start = stop
