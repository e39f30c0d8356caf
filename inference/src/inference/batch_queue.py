"""The batch queue: concurrent single-car requests in one worker share one model run.

Bounded, with a deadline per request: overload is an `OverloadedError` (a 503, see `errors`),
not a growing wait.
"""

import asyncio
import collections
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
