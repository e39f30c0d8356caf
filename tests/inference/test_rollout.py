"""The rollout in one worker: the challenger held beside the champion, in shadow or canary."""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from inference import shadow as shadow_module
from inference.challenger import ChallengerHolder
from inference.metrics import Metrics
from inference.model import LoadedModel, Prediction
from inference.prediction_log import PredictionLog
from inference.rollout_metrics import MODEL_VERSION_HEADER, SHADOW, SHUTDOWN, RolloutMetrics
from inference.settings import Settings
from inference.shadow import ShadowScorer
from shared_schema import Car
from shared_schema.prediction_log import read_prediction_log
from shared_schema.serving_folder import Pointer

from ..conftest import wait_for
from .conftest import Client, MakeClient

Publish = Callable[..., Pointer]


def metric(client: Client, name: str, **labels: str) -> float:
    """A sample's value from /metrics (0 when absent)."""
    want = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    prefix = f"{name}{{{want}}} " if labels else f"{name} "
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
        if (
            labels
            and line.startswith(name + "{")
            and all(f'{key}="{value}"' in line for key, value in labels.items())
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def shadow_runs(client: Client, outcome: str) -> float:
    """The challenger's (version 2) shadow runs counted with this outcome."""
    return metric(
        client, "carprice_model_runs_total", model_version="2", role="shadow", outcome=outcome
    )


REAL_RUN = LoadedModel.run


def challenger_raises(self: LoadedModel, cars: Any) -> Prediction:
    """`LoadedModel.run` with an injected fault in the challenger (version 2) alone."""
    if self.version == "2":
        raise RuntimeError("injected challenger fault")
    return REAL_RUN(self, cars)


def logged(log_dir: Path, records: int) -> Callable[[], bool]:
    """Whether the prediction log holds `records` records (a condition for `wait_for`)."""
    return lambda: log_dir.is_dir() and len(read_prediction_log(log_dir).records) == records


def test_shadow_logs_both_prices_and_answers_with_the_champion(
    make_client: MakeClient, rollout_folder: Path, tmp_path: Path, car_payload: dict[str, Any]
) -> None:
    """Every answer is the champion's; each logged car carries the challenger's price too."""
    log_dir = tmp_path / "log"
    with make_client(
        rollout_folder,
        shadow_share=1.0,
        prediction_log_dir=str(log_dir),
        prediction_log_flush_s=0.05,
    ) as client:
        single = client.post("/predict", json=car_payload)
        batch = client.post("/predict/batch", json={"cars": [car_payload, car_payload]})
        for response in (single, batch):
            assert response.status_code == 200
            assert response.headers[MODEL_VERSION_HEADER] == "1"
            assert response.json()["model_version"] == "1"
        # A shadowed answer is logged once its shadow run is done.
        wait_for(logged(log_dir, 3), "3 records logged")
    records = read_prediction_log(log_dir).records
    assert len(records) == 3
    for record in records:
        assert record.model_version == "1"
        assert record.challenger_version == "2"
        assert record.challenger_price_rub is not None
        assert record.challenger_price_rub > record.price_rub  # a higher intercept
    assert records[0].price_rub == single.json()["price_rub"]


def test_a_shadowed_record_keeps_its_asking_price_and_rating(
    make_client: MakeClient,
    tmp_path: Path,
    bundle_publisher: Publish,
    bundle_stager: Publish,
    car_payload: dict[str, Any],
) -> None:
    """Shadowed and rated at once: the answer's rating and both prices in one record per car."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1", interval=True)
    bundle_stager(folder, model_version="2", bias=-127.0, interval=True)
    log_dir = tmp_path / "log"
    with make_client(
        folder, shadow_share=1.0, prediction_log_dir=str(log_dir), prediction_log_flush_s=0.05
    ) as client:
        cars = [car_payload, {**car_payload, "asking_price_rub": 1.0}]
        answer = client.post("/predict/batch", json={"cars": cars}).json()
        # The log's directory appears with its first segment, after the shadow run.
        wait_for(logged(log_dir, 2), "2 records logged")
    records = read_prediction_log(log_dir).records
    assert answer["ratings"] == [None, "below_market"]
    rated = [(r.asking_price_rub, r.rating) for r in records]
    assert rated == [(None, None), (1.0, "below_market")]
    assert all(r.challenger_version == "2" and r.challenger_price_rub for r in records)


def test_a_failing_shadow_run_is_counted_and_never_seen(
    make_client: MakeClient,
    rollout_folder: Path,
    tmp_path: Path,
    car_payload: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The challenger raising: 200 with the champion's price, an error counted, logged alone."""
    log_dir = tmp_path / "log"
    with make_client(rollout_folder, shadow_share=1.0, prediction_log_dir=str(log_dir)) as client:
        monkeypatch.setattr(LoadedModel, "run", challenger_raises)
        response = client.post("/predict", json=car_payload)
        assert response.status_code == 200
        assert response.json()["model_version"] == "1"
        wait_for(lambda: shadow_runs(client, "error") == 1, "the shadow run's error counted")
    (record,) = read_prediction_log(log_dir).records
    assert record.challenger_version is None
    assert record.price_rub == response.json()["price_rub"]


def test_without_its_guard_a_raising_shadow_run_ends_shadowing_uncounted(
    make_client: MakeClient,
    rollout_folder: Path,
    tmp_path: Path,
    car_payload: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Broken copy: `_score` without its except: no error counted, the shadow task dead."""

    async def unguarded_score(self: ShadowScorer, cars: Any) -> Prediction | None:
        model = self._challenger.current
        if model is None:
            return None
        loop = asyncio.get_running_loop()
        shadow = await loop.run_in_executor(self._thread, model.run, cars)
        self._rollout.run(model.version, SHADOW, ok=True)
        return shadow

    monkeypatch.setattr(ShadowScorer, "_score", unguarded_score)
    log_dir = tmp_path / "log"
    client = make_client(
        rollout_folder,
        shadow_share=1.0,
        shadow_queue_max=4,
        prediction_log_dir=str(log_dir),
        prediction_log_flush_s=0.05,
    )

    def serve_while_the_challenger_raises() -> tuple[list[int], float, float]:
        monkeypatch.setattr(LoadedModel, "run", challenger_raises)
        statuses = [client.post("/predict", json=car_payload).status_code]
        # The shadow task logs the champion's answer alone, then the error ends it.
        wait_for(logged(log_dir, 1), "1 records logged")
        # Nothing takes answers off the queue any more: 4 fit, the other 2 are dropped.
        statuses += [client.post("/predict", json=car_payload).status_code for _ in range(6)]
        dropped = metric(client, "carprice_shadow_dropped_total", reason="queue_full")
        errors = shadow_runs(client, "error")
        return statuses, dropped, errors

    # Asserted after the block: a failed assert inside would be hidden by the stop's error.
    with pytest.raises(ExceptionGroup) as stopped, client:
        statuses, dropped, errors = serve_while_the_challenger_raises()
    assert statuses == [200] * 7
    assert (dropped, errors) == (2, 0)
    # Stopping the server raises the challenger's error out of the dead shadow task.
    assert stopped.group_contains(RuntimeError, match="injected challenger fault")


def test_a_full_shadow_queue_drops_shadow_work_counted_and_loses_no_record(
    make_client: MakeClient,
    rollout_folder: Path,
    tmp_path: Path,
    car_payload: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slow challenger and a queue of one: shadow runs dropped and counted, every car logged."""

    def slow_challenger(self: LoadedModel, cars: Any) -> Prediction:
        if self.version == "2":
            time.sleep(0.3)
        return REAL_RUN(self, cars)

    log_dir = tmp_path / "log"
    with make_client(
        rollout_folder, shadow_share=1.0, shadow_queue_max=1, prediction_log_dir=str(log_dir)
    ) as client:
        monkeypatch.setattr(LoadedModel, "run", slow_challenger)
        for _ in range(6):
            assert client.post("/predict", json=car_payload).status_code == 200
        dropped = metric(client, "carprice_shadow_dropped_total", reason="queue_full")
        assert dropped >= 3
        wait_for(lambda: shadow_runs(client, "ok") >= 1, "a shadow run")
    read = read_prediction_log(log_dir)
    assert len(read.records) == 6
    shadowed = [record for record in read.records if record.challenger_version == "2"]
    assert 1 <= len(shadowed) <= 6 - dropped


def test_the_canary_share_is_answered_by_the_challenger_and_named(
    make_client: MakeClient, rollout_folder: Path, car_payload: dict[str, Any]
) -> None:
    """CANARY_SHARE=1: answers carry version 2 in header and JSON; metrics count it by version."""
    with make_client(rollout_folder, canary_share=1.0) as client:
        single = client.post("/predict", json=car_payload)
        batch = client.post("/predict/batch", json={"cars": [car_payload]})
        for response in (single, batch):
            assert response.headers[MODEL_VERSION_HEADER] == "2"
            assert response.json()["model_version"] == "2"
        assert batch.json()["prices_rub"] == [single.json()["price_rub"]]
        runs = metric(
            client, "carprice_model_runs_total", model_version="2", role="canary", outcome="ok"
        )
        assert runs == 2
        timed = metric(client, "carprice_version_request_duration_seconds_count", model_version="2")
        assert timed == 2


def test_without_a_challenger_the_shares_change_nothing(
    make_client: MakeClient,
    tmp_path: Path,
    bundle_publisher: Publish,
    car_payload: dict[str, Any],
) -> None:
    """Shares set and no challenger pointer: the champion answers, records have no challenger."""
    folder = tmp_path / "model"
    bundle_publisher(folder, model_version="1")
    log_dir = tmp_path / "log"
    with make_client(
        folder, shadow_share=1.0, canary_share=1.0, prediction_log_dir=str(log_dir)
    ) as client:
        response = client.post("/predict", json=car_payload)
        assert response.headers[MODEL_VERSION_HEADER] == "1"
    (record,) = read_prediction_log(log_dir).records
    assert record.challenger_version is None
    line = next(log_dir.glob("predictions-*")).read_bytes()
    assert b"challenger" not in line


async def stop_while_lingering(folder: Path, log_dir: Path, car: Car) -> tuple[int, float]:
    """Offer 3 answers, stop while the shadow task lingers on them: (records, shutdown drops)."""
    settings = Settings(model_dir=str(folder), shadow_share=1.0, prediction_log_dir=str(log_dir))
    metrics = Metrics()
    rollout = RolloutMetrics(metrics)
    challenger = ChallengerHolder(settings, rollout)
    await challenger.refresh()
    log = PredictionLog(settings, metrics)
    log.start()
    scorer = ShadowScorer(settings, challenger, rollout, log)
    scorer.start()
    for number in range(3):
        scorer.offer(f"r{number}", [car], Prediction([1.0], "1"), None)
    await asyncio.sleep(0.2)  # the task took them all and lingers (60 s, patched)
    await scorer.stop()
    await log.stop()
    records = len(read_prediction_log(log_dir).records) if log_dir.is_dir() else 0
    dropped = metrics.registry.get_sample_value(
        "carprice_shadow_dropped_total", {"reason": SHUTDOWN}
    )
    return records, dropped or 0.0


def test_stopped_while_lingering_every_taken_answer_is_logged_and_counted(
    rollout_folder: Path,
    tmp_path: Path,
    car_payload: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """stop() during the linger: each answer the task took is logged alone, counted as shutdown."""
    monkeypatch.setattr(shadow_module, "_LINGER_S", 60.0)
    car = msgspec.convert(car_payload, Car)
    log_dir = tmp_path / "log"
    assert asyncio.run(stop_while_lingering(rollout_folder, log_dir, car)) == (3, 3)


def test_without_the_fix_a_stop_while_lingering_loses_the_taken_answers(
    rollout_folder: Path,
    tmp_path: Path,
    car_payload: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Broken copy, the linger before the try/finally: the taken answer is not logged or counted."""

    async def run_lingering_unguarded(self: ShadowScorer) -> None:
        while True:
            batch = [await self._queue.get()]
            await asyncio.sleep(shadow_module._LINGER_S)
            rows = len(batch[0][1])
            while rows < shadow_module._MAX_ROWS and not self._queue.empty():
                batch.append(self._queue.get_nowait())
                rows += len(batch[-1][1])
            shadow = None
            try:
                shadow = await self._score([car for _, cars, _, _ in batch for car in cars])
            except asyncio.CancelledError:
                self._rollout.shadow_dropped.labels(SHUTDOWN).inc(len(batch))
                raise
            finally:
                start = 0
                for shadowed in batch:
                    end = start + len(shadowed[1])
                    part = None if shadow is None else shadow_module._rows(shadow, start, end)
                    self._record(shadowed, part)
                    start = end

    monkeypatch.setattr(shadow_module, "_LINGER_S", 60.0)
    monkeypatch.setattr(ShadowScorer, "_run", run_lingering_unguarded)
    car = msgspec.convert(car_payload, Car)
    log_dir = tmp_path / "log"
    # The task took the first answer only; the other two were still queued, so stop() logs them.
    assert asyncio.run(stop_while_lingering(rollout_folder, log_dir, car)) == (2, 2)
