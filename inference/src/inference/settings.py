"""Server settings: read once from environment variables into one frozen, validated object."""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from inference.slo import LATENCY_THRESHOLD_S
from shared_schema.serving_folder import DEFAULT_SERVING_FOLDER

PositiveInt = Annotated[int, Meta(ge=1)]


def available_cpus() -> int:
    """CPUs this process may run on (what `nproc` prints): a taskset or cpuset limit counts."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class SettingsError(ValueError):
    """An environment variable holds a value the server cannot run with."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything the server can be tuned with, each read from the upper-case env variable.

    The defaults below are the only ones: `car-serve`, the Makefile, the image and
    docker-compose pass settings through without defaults of their own.

    Attributes:
        model_dir: The serving folder, whose `current` pointer names the bundle to serve, or a
            plain bundle directory holding `model.onnx` and `manifest.json` (`MODEL_DIR`;
            `shared_schema.serving_folder`, whose `DEFAULT_SERVING_FOLDER` is the default).
        host: Address Granian binds to (`HOST`).
        port: Port Granian binds to (`PORT`).
        workers: Granian worker processes (`WORKERS`), default one per available CPU.
        ort_threads: ONNX Runtime intra-op threads per worker (`ORT_THREADS`). One, because
            the workers already use every core and a tree ensemble on a handful of rows gains
            nothing from more threads, only contention.
        batch_enabled: Coalesce concurrent single-car requests into one ORT run
            (`BATCH_ENABLED`).
        batch_max_rows: Most rows in one coalesced ORT run (`BATCH_MAX_ROWS`).
        batch_window_us: Extra time the batcher waits for more requests before running, in
            microseconds; 0 takes what is queued without waiting (`BATCH_WINDOW_US`).
        queue_max: Most single-car requests waiting per worker; more are rejected with 503
            (`QUEUE_MAX`).
        request_deadline_ms: A queued request not answered within this budget gets a 503
            with Retry-After (`REQUEST_DEADLINE_MS`).
        shed_lag_ms: While a worker's event loop runs this late, new prediction requests get
            an immediate 503 with Retry-After (`SHED_LAG_MS`, see `inference.admission`).
            2.5 times the latency SLO's threshold (`inference.slo`): a worker that far behind
            misses the SLO on every request it takes on, while a lone 1,000-car batch does not
            lag it that much.
        batch_limit: Most cars in one `/predict/batch` request (`BATCH_LIMIT`).
        offload_rows: A `/predict/batch` request of more cars runs on the worker's batch
            thread, off the event loop (`OFFLOAD_ROWS`, see `inference.predict`).
        batch_run_rows: Most cars in one run of the batch thread: batch requests queued behind
            a run are priced together in the next, up to this many cars; a larger request runs
            alone, and 1 prices every request alone (`BATCH_RUN_ROWS`, see
            `inference.batch_queue.BatchLane`). 4,096: with 4 clients posting 1,000-car
            batches, 1.10-1.11x the rows/s of every request alone in three sets of paired
            rounds, 2,048 1.01-1.06x; the worker's RSS after them 156-157 MB, 151 with 2,048,
            139-140 alone (onnxruntime keeps the memory of its largest run: 812 float32
            columns per car in the champion's graph, gathered and then concatenated).
        max_body_bytes: Largest accepted request body; larger gets 413 (`MAX_BODY_BYTES`).
        body_timeout_s: Seconds a client has to send a whole request body; slower gets 408
            and its connection closed (`BODY_TIMEOUT_S`).
        reload_token: Bearer token for `POST /admin/reload`; unset disables the endpoint
            (`RELOAD_TOKEN`).
        reload_poll_s: Seconds between checks of the model dir for a new bundle; 0 disables
            polling (`RELOAD_POLL_S`).
        reload_grace_s: Seconds a bundle that is not whole yet as seen from here (its pointer
            names a bundle not there, or its manifest's sha256 is not its model's) stays
            pending before it counts as a failed load (`RELOAD_GRACE_S`). 90: longer than the
            60 s an NFS client caches directory attributes at most by default (`acdirmax`).
        log_level: Level of the server's and Granian's logs (`LOG_LEVEL`).
        prediction_log_dir: Directory of the prediction log's segment files; unset turns the
            log off (`PREDICTION_LOG_DIR`). Format: `shared_schema.prediction_log`.
        prediction_log_sample: Share of prediction requests logged, 0 to 1, drawn per request
            (`PREDICTION_LOG_SAMPLE`).
        prediction_log_buffer: Most answered cars a worker holds in memory until written; more
            are dropped and counted (`PREDICTION_LOG_BUFFER`). Also the most a crash loses.
        prediction_log_segment_bytes: A segment is closed once it holds this many bytes
            (`PREDICTION_LOG_SEGMENT_BYTES`).
        prediction_log_segment_seconds: A segment is closed once it is this old, in seconds
            (`PREDICTION_LOG_SEGMENT_SECONDS`).
        prediction_log_flush_s: Seconds between writes of the buffer to the open segment;
            sooner when half the buffer fills (`PREDICTION_LOG_FLUSH_S`).
        shadow_share: Share of the champion's answers, 0 to 1, also scored by the challenger
            (the serving folder's `challenger` pointer) after the answer, off the hot path;
            0 or no challenger: none (`SHADOW_SHARE`, see `inference.shadow`).
        shadow_queue_max: Most answered requests a worker holds waiting for their shadow run;
            more are not shadowed, and counted (`SHADOW_QUEUE_MAX`).
        canary_share: Share of requests, 0 to 1, answered by the challenger instead of the
            champion while one is held (`CANARY_SHARE`); the serving folder's canary share
            file wins when it is for the held challenger (`inference.challenger`).
    """

    model_dir: str = DEFAULT_SERVING_FOLDER
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8000
    workers: PositiveInt = msgspec.field(default_factory=available_cpus)
    ort_threads: PositiveInt = 1
    batch_enabled: bool = True
    batch_max_rows: Annotated[int, Meta(ge=1, le=4096)] = 64
    batch_window_us: Annotated[int, Meta(ge=0, le=1_000_000)] = 0
    queue_max: PositiveInt = 1024
    request_deadline_ms: Annotated[int, Meta(ge=1, le=60_000)] = 500
    shed_lag_ms: Annotated[int, Meta(ge=1, le=60_000)] = round(2.5 * LATENCY_THRESHOLD_S * 1e3)
    batch_limit: Annotated[int, Meta(ge=1, le=100_000)] = 1000
    offload_rows: Annotated[int, Meta(ge=0, le=100_000)] = 64
    batch_run_rows: Annotated[int, Meta(ge=1, le=100_000)] = 4096
    max_body_bytes: Annotated[int, Meta(ge=1024)] = 2_000_000
    body_timeout_s: Annotated[float, Meta(gt=0.0, le=300.0)] = 10.0
    reload_token: Annotated[str, Meta(min_length=16)] | None = None
    reload_poll_s: Annotated[float, Meta(ge=0.0, le=3600.0)] = 2.0
    reload_grace_s: Annotated[float, Meta(ge=0.0, le=3600.0)] = 90.0
    log_level: Literal["debug", "info", "warning"] = "info"
    prediction_log_dir: Annotated[str, Meta(min_length=1)] | None = None
    prediction_log_sample: Annotated[float, Meta(ge=0.0, le=1.0)] = 1.0
    prediction_log_buffer: Annotated[int, Meta(ge=1, le=10_000_000)] = 10_000
    prediction_log_segment_bytes: Annotated[int, Meta(ge=1024)] = 64_000_000
    prediction_log_segment_seconds: Annotated[float, Meta(gt=0.0, le=604_800.0)] = 3600.0
    prediction_log_flush_s: Annotated[float, Meta(gt=0.0, le=60.0)] = 1.0
    shadow_share: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.0
    shadow_queue_max: Annotated[int, Meta(ge=1, le=1_000_000)] = 256
    canary_share: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.0

    @property
    def model_path(self) -> Path:
        """The serving folder (or plain bundle directory) as a path."""
        return Path(self.model_dir)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Read the settings from environment variables, then apply explicit overrides.

        Args:
            environ: Variables to read; `os.environ` when omitted.
            **overrides: Field values that win over the environment (the CLI's flags).

        Returns:
            The validated settings.

        Raises:
            SettingsError: A variable is malformed or out of range.
        """
        env = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for name in cls.__struct_fields__:
            value = env.get(name.upper())
            if value is not None and value != "":
                raw[name] = _parse_bool(name, value) if name == "batch_enabled" else value
        raw.update({key: value for key, value in overrides.items() if value is not None})
        try:
            # strict=False lets "8000" become 8000; the Meta bounds still apply.
            return msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as error:
            message, _, path = str(error).rpartition(" - at `$.")
            field = path.rstrip("`")
            if not message or field not in cls.__struct_fields__:
                raise SettingsError(f"invalid server setting: {error}") from error
            raise SettingsError(
                f"invalid server setting: {field.upper()}={raw.get(field)!r}: {message}"
            ) from error


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"invalid server setting: {name.upper()}={value!r} is not a boolean")
