"""Predict: price decoded cars on the current model and record what was predicted.

A single car goes through the batch queue when batching is on, so concurrent requests share one
model run; a batch request is already one run. Every run on requests goes through `run`, which
is where the prediction metrics are recorded; every answer leaves through `price_one` or
`price_many`, which hand it to the prediction log (`prediction_log`) when it is on.

How batches and single cars share a worker: a batch request of more than `OFFLOAD_ROWS` cars
runs on the worker's one batch thread, not on the event loop. onnxruntime releases the GIL
while it walks the forest, so the loop goes on taking, running and answering single cars
meanwhile (the operating system shares the core between the two threads), instead of holding
every one of them for the whole batch. Batches queue behind each other on that one thread, so
many batch clients cannot take more than one thread's share of the core. A small batch runs
inline: handing it to the thread costs more than it saves.
"""

import asyncio
import contextlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from inference.batch_queue import MicroBatcher
from inference.metrics import Metrics
from inference.model import Prediction
from inference.prediction_log import PredictionLog
from inference.rating import Ratings, rate_listings
from inference.reload import ModelHolder
from inference.settings import Settings
from shared_schema import Car


class Predictor:
    """Prices cars on the model `holder` serves now, through the batch queue if enabled."""

    def __init__(self, settings: Settings, holder: ModelHolder, metrics: Metrics) -> None:
        self._holder = holder
        self._metrics = metrics
        self._offload_rows = settings.offload_rows
        self._batch_thread = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="batch-run", initializer=_lowest_cpu_priority
        )
        self._queue: MicroBatcher | None = None
        self._log: PredictionLog | None = None
        if settings.prediction_log_dir is not None:
            self._log = PredictionLog(settings, metrics)
        if settings.batch_enabled:
            self._queue = MicroBatcher(
                self.run,
                metrics,
                max_rows=settings.batch_max_rows,
                window_us=settings.batch_window_us,
                queue_max=settings.queue_max,
                deadline_ms=settings.request_deadline_ms,
            )

    def start(self) -> None:
        """Start the batch queue and the prediction log's writer, if on, on the running loop."""
        if self._queue is not None:
            self._queue.start()
        if self._log is not None:
            self._log.start()

    async def stop(self) -> None:
        """Stop the batch queue, rejecting what is still queued, then write out the log."""
        if self._queue is not None:
            await self._queue.stop()
        self._batch_thread.shutdown(wait=False, cancel_futures=True)
        if self._log is not None:
            await self._log.stop()

    def run(self, cars: Sequence[Car]) -> Prediction:
        """One model run: prices (and interval) for the cars, in order, and the model version.

        Raises:
            ModelNotReadyError: No model has loaded yet.
        """
        model = self._holder.model()
        prediction = model.run(cars)
        self._metrics.observe_run(prediction.prices, model.unknown_categories(cars))
        return prediction

    async def price_one(self, car: Car, request_id: str) -> tuple[Prediction, Ratings]:
        """One car's prediction (one row) and its asking price's rating, logged as `request_id`.

        Raises:
            ModelNotReadyError: No model has loaded yet.
            OverloadedError: The batch queue is full or the request's deadline passed.
        """
        self._metrics.inflight.inc()
        try:
            if self._queue is not None:
                prediction = await self._queue.predict(car)
            else:
                prediction = self.run([car])
        finally:
            self._metrics.inflight.dec()
        return self._rated((car,), prediction, request_id)

    async def price_many(self, cars: Sequence[Car], request_id: str) -> tuple[Prediction, Ratings]:
        """The cars' prices, in order, in one run, and their ratings, logged as `request_id`.

        Raises:
            ModelNotReadyError: No model has loaded yet.
        """
        self._metrics.inflight.inc()
        try:
            if len(cars) > self._offload_rows:
                loop = asyncio.get_running_loop()
                prediction = await loop.run_in_executor(self._batch_thread, self.run, cars)
            else:
                prediction = self.run(cars)
        finally:
            self._metrics.inflight.dec()
        return self._rated(cars, prediction, request_id)

    def _rated(
        self, cars: Sequence[Car], prediction: Prediction, request_id: str
    ) -> tuple[Prediction, Ratings]:
        """Rate the asking prices once, for the answer and the prediction log alike."""
        ratings = rate_listings(cars, prediction)
        if self._log is not None:
            self._log.record(
                request_id, cars, prediction.prices, prediction.version, ratings.ratings
            )
        return prediction, ratings


def _lowest_cpu_priority() -> None:
    """Give the calling thread (Linux: a task of its own) the lowest CPU priority, nice 19.

    The batch thread then gets the core only when the event loop's thread does not want it:
    a single car arriving during a batch runs almost at once, not after the scheduler's turn.
    """
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or not allowed: no-op
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
