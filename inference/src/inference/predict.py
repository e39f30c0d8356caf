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
many batch clients cannot take more than one thread's share of the core; those waiting when a
run ends are priced together in the next (`batch_queue.BatchLane`, up to `BATCH_RUN_ROWS`
cars). A small batch runs inline: handing it to the thread costs more than it saves.

The rollout (`challenger`, `shadow`): a `canary_share` of requests is answered by the
challenger when one is held (one car on a canary thread of its own, a batch as the
champion's would run, never in the champion's batch queue); a `shadow_share` of the
champion's answers is handed to the shadow scorer after the answer is computed, which then
logs it.
"""

import asyncio
import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from inference.batch_queue import BatchLane, MicroBatcher
from inference.challenger import ChallengerHolder
from inference.metrics import Metrics
from inference.model import LoadedModel, Prediction
from inference.prediction_log import PredictionLog
from inference.rating import Ratings, rate_listings
from inference.reload import ModelHolder
from inference.rollout_metrics import CANARY, CHAMPION, RolloutMetrics
from inference.settings import Settings
from inference.shadow import ShadowScorer
from inference.threads import lowest_cpu_priority
from shared_schema import Car


class Predictor:
    """Prices cars on the model `holder` serves now, through the batch queue if enabled."""

    def __init__(
        self,
        settings: Settings,
        holder: ModelHolder,
        metrics: Metrics,
        challenger: ChallengerHolder,
        rollout: RolloutMetrics,
    ) -> None:
        self._holder = holder
        self._metrics = metrics
        self._challenger = challenger
        self._rollout = rollout
        self._canary_share = settings.canary_share
        self._offload_rows = settings.offload_rows
        self._batch_thread = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="batch-run", initializer=lowest_cpu_priority
        )
        self._batch_lane = BatchLane(self._batch_thread, max_rows=settings.batch_run_rows)
        # A canary car runs off the loop, at normal priority: a slow challenger then delays
        # its own answers, not the champion's (whose p95 the watcher compares it with).
        self._canary_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="canary-run")
        self._queue: MicroBatcher | None = None
        self._log: PredictionLog | None = None
        if settings.prediction_log_dir is not None:
            self._log = PredictionLog(settings, metrics)
        self._shadow = ShadowScorer(settings, challenger, rollout, self._log)
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
        self._shadow.start()

    async def stop(self) -> None:
        """Stop the batch queue, rejecting what is still queued, then write out the log."""
        if self._queue is not None:
            await self._queue.stop()
        self._batch_lane.stop()
        self._batch_thread.shutdown(wait=False, cancel_futures=True)
        self._canary_thread.shutdown(wait=False, cancel_futures=True)
        await self._shadow.stop()
        if self._log is not None:
            await self._log.stop()

    def run(self, cars: Sequence[Car]) -> Prediction:
        """One model run: prices (and interval) for the cars, in order, and the model version.

        Raises:
            ModelNotReadyError: No model has loaded yet.
        """
        return self._run_on(self._holder.model(), cars, CHAMPION)

    def _run_on(self, model: LoadedModel, cars: Sequence[Car], role: str) -> Prediction:
        try:
            prediction = model.run(cars)
        except Exception:
            self._rollout.run(model.version, role, ok=False)
            raise
        self._rollout.run(model.version, role, ok=True)
        self._metrics.observe_run(prediction.prices, model.unknown_categories(cars))
        return prediction

    def _canary(self) -> LoadedModel | None:
        """The challenger, when this request is drawn into the canary share.

        The share is the canary share file's for the held challenger (`car-train watch`'s
        schedule), else `CANARY_SHARE`.
        """
        model = self._challenger.current
        share = self._challenger.canary_share
        if share is None:
            share = self._canary_share
        if model is None or share <= 0.0:
            return None
        if share >= 1.0 or random.random() < share:  # noqa: S311 - not crypto
            return model
        return None

    async def price_one(self, car: Car, request_id: str) -> tuple[Prediction, Ratings]:
        """One car's prediction (one row) and its asking price's rating, logged as `request_id`.

        Raises:
            ModelNotReadyError: No model has loaded yet.
            OverloadedError: The batch queue is full or the request's deadline passed.
        """
        self._metrics.inflight.inc()
        canary = self._canary()
        try:
            if canary is not None:
                loop = asyncio.get_running_loop()
                run = partial(self._run_on, canary, role=CANARY)
                prediction = await loop.run_in_executor(self._canary_thread, run, [car])
            elif self._queue is not None:
                prediction = await self._queue.predict(car)
            else:
                prediction = self.run([car])
        finally:
            self._metrics.inflight.dec()
        return self._answered(request_id, (car,), prediction, canary=canary is not None)

    async def price_many(self, cars: Sequence[Car], request_id: str) -> tuple[Prediction, Ratings]:
        """The cars' prices, in order, in one run, and their ratings, logged as `request_id`.

        Raises:
            ModelNotReadyError: No model has loaded yet.
        """
        self._metrics.inflight.inc()
        canary = self._canary()
        try:
            run = self.run if canary is None else partial(self._run_on, canary, role=CANARY)
            if len(cars) > self._offload_rows:
                # The champion's cars share runs; a challenger's only with its own model's.
                key = CHAMPION if canary is None else canary
                prediction = await self._batch_lane.price(run, cars, key)
            else:
                prediction = run(cars)
        finally:
            self._metrics.inflight.dec()
        return self._answered(request_id, cars, prediction, canary=canary is not None)

    def _answered(
        self, request_id: str, cars: Sequence[Car], prediction: Prediction, *, canary: bool
    ) -> tuple[Prediction, Ratings]:
        """Rate the asking prices once, for the answer and the log alike, and log the answer.

        A champion's answer drawn for shadowing goes to the shadow scorer, which logs it after
        the challenger's run; any other answer goes to the log at once.
        """
        ratings = rate_listings(cars, prediction)
        if not canary and self._shadow.wants():
            self._shadow.offer(request_id, cars, prediction, ratings.ratings)
        elif self._log is not None:
            self._log.record(
                request_id, cars, prediction.prices, prediction.version, ratings=ratings.ratings
            )
        return prediction, ratings
