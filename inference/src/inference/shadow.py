"""Shadow scoring: the challenger prices a share of answered requests, off the hot path.

On the request path `ShadowScorer.offer` only puts the answered request on a bounded queue
(no model run, never raises). A task of the worker takes what queued within a few
milliseconds of the first (up to `_MAX_ROWS` cars) and runs the challenger on them at once, on
a thread of its own at the lowest CPU priority (nice 19), so the shadow run gets
the core only when the event loop and the batch thread do not want it. Under load that thread
falls behind, the queue fills, and shadow work is what is dropped first: counted in
`carprice_shadow_dropped_total{reason="queue_full"}`, before any client is turned away.

A shadowed request's log record waits for its shadow run and is then written with both prices
(`challenger_price_rub`, `challenger_version`); a dropped or failed shadow run still writes the
champion's record alone, so nothing answered is lost from the log. A shadow run that raises is
counted (`carprice_model_runs_total{role="shadow",outcome="error"}`) and logged; the client
had its answer already and never sees it.
"""

import asyncio
import logging
import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from inference.background import cancel
from inference.challenger import ChallengerHolder
from inference.model import Prediction
from inference.prediction_log import PredictionLog
from inference.rollout_metrics import QUEUE_FULL, SHADOW, SHUTDOWN, RolloutMetrics
from inference.settings import Settings
from inference.threads import lowest_cpu_priority
from shared_schema import Car
from shared_schema.rating import Rating

logger = logging.getLogger(__name__)

#: How long the shadow task waits after a first answer for more, in seconds.
_LINGER_S = 0.005
#: The most cars in one shadow run (a batch request alone may exceed it).
_MAX_ROWS = 256

#: One answered request waiting for its shadow run: id, cars, the champion's answer, and the
#: asking prices' ratings (None when no car had one).
_Shadowed = tuple[str, Sequence[Car], Prediction, Sequence[Rating | None] | None]


class ShadowScorer:
    """One worker's shadow scoring of `Settings.shadow_share` of the answered requests."""

    def __init__(
        self,
        settings: Settings,
        challenger: ChallengerHolder,
        rollout: RolloutMetrics,
        log: PredictionLog | None,
    ) -> None:
        self._share = settings.shadow_share
        self._challenger = challenger
        self._rollout = rollout
        self._log = log
        self._queue: asyncio.Queue[_Shadowed] = asyncio.Queue(settings.shadow_queue_max)
        self._thread = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="shadow-run", initializer=lowest_cpu_priority
        )
        self._task: asyncio.Task[None] | None = None

    def wants(self) -> bool:
        """Whether to shadow the request being answered: a challenger is held, drawn by share."""
        if self._share <= 0.0 or self._challenger.current is None:
            return False
        return self._share >= 1.0 or random.random() < self._share  # noqa: S311 - not crypto

    def offer(
        self,
        request_id: str,
        cars: Sequence[Car],
        answer: Prediction,
        ratings: Sequence[Rating | None] | None,
    ) -> None:
        """Queue an answered request for its shadow run: O(1), never raises.

        A full queue drops the shadow run (counted) and logs the champion's answer alone.
        """
        shadowed = (request_id, cars, answer, ratings)
        try:
            self._queue.put_nowait(shadowed)
        except asyncio.QueueFull:
            self._rollout.shadow_dropped.labels(QUEUE_FULL).inc()
            self._record(shadowed, None)

    def start(self) -> None:
        """Start the shadow task on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="shadow-scoring")

    async def stop(self) -> None:
        """Stop scoring; what is still queued is logged with the champion's price alone."""
        await cancel(self._task)
        self._task = None
        self._thread.shutdown(wait=False, cancel_futures=True)
        while not self._queue.empty():
            shadowed = self._queue.get_nowait()
            self._rollout.shadow_dropped.labels(SHUTDOWN).inc()
            self._record(shadowed, None)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            shadow = None
            # From here on what is taken off the queue is in `batch`, which the finally logs:
            # stopped while lingering or mid-run, no answer is lost.
            try:
                # Linger, then take what queued meanwhile: one challenger run (and one wake-up
                # of the loop) for many answers, instead of one each.
                await asyncio.sleep(_LINGER_S)
                rows = len(batch[0][1])
                while rows < _MAX_ROWS and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    rows += len(batch[-1][1])
                shadow = await self._score([car for _, cars, _, _ in batch for car in cars])
            except asyncio.CancelledError:
                self._rollout.shadow_dropped.labels(SHUTDOWN).inc(len(batch))
                raise
            finally:
                # Stopped too: every champion answer is logged, alone then.
                start = 0
                for shadowed in batch:
                    end = start + len(shadowed[1])
                    part = None if shadow is None else _rows(shadow, start, end)
                    self._record(shadowed, part)
                    start = end

    async def _score(self, cars: Sequence[Car]) -> Prediction | None:
        """The challenger's prediction for the cars; None when it is gone or failed (counted)."""
        model = self._challenger.current
        if model is None:
            return None
        loop = asyncio.get_running_loop()
        try:
            shadow = await loop.run_in_executor(self._thread, model.run, cars)
        except Exception as error:  # whatever the challenger raises stays here
            self._rollout.run(model.version, SHADOW, ok=False)
            logger.warning("shadow run of %s failed: %r", model.version, error)
            return None
        self._rollout.run(model.version, SHADOW, ok=True)
        return shadow

    def _record(self, shadowed: _Shadowed, shadow: Prediction | None) -> None:
        if self._log is not None:
            request_id, cars, answer, ratings = shadowed
            self._log.record(
                request_id, cars, answer.prices, answer.version, ratings=ratings, shadow=shadow
            )


def _rows(prediction: Prediction, start: int, end: int) -> Prediction:
    """The prediction of the cars `start` to `end` (exclusive) of a batched run."""
    return Prediction(prediction.prices[start:end], prediction.version)
