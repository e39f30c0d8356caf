"""The BentoML peer: our ONNX bundle in onnxruntime behind BentoML's adaptive batching.

BentoML's docs serve a model through its framework's own runtime inside a `@bentoml.service`
class; for an ONNX graph that is an `onnxruntime.InferenceSession` opened in `__init__`. This
serves the same graph our server serves, raw car fields in (the graph holds the encoding),
decoded by the workspace's `shared_schema` (installed into this environment) exactly as ours
decodes them, and answers the price and its interval per car, like ours.

Runs in its own environment (`benchmarks.peers.envs`), started by `benchmarks.peers.specs`:
`bentoml serve service:CarPrice` from this folder. The harness passes the bundle and the batch
limits as environment variables (their homes are our Settings and `benchmarks/goals.toml`); the
decorators read them when BentoML imports this module, the only time it lets them be set.

Settings, after BentoML's docs on workers, concurrency and adaptive batching:
- `workers=1`: one process, pinned with its supervisor to the benchmark's one core, like ours.
- `threads=1`: the batch runs on one thread; ORT on one intra-op thread (a second would only
  contend for the one core).
- `max_batch_size`: ours (`BATCH_MAX_ROWS`). `max_latency_ms`: the sustained p95 bound;
  BentoML's dispatcher answers 503 for a request it predicts will miss it, rather than queue.
- `traffic.timeout`: 10 s, as ours (`BODY_TIMEOUT_S`); `concurrency` unset (the docs: set it
  to the batch size only for autoscaling, which one pinned worker does not do).
- metrics and access logs off, as ours runs without access logs.
"""

import os
from pathlib import Path
from typing import Any

import bentoml
import msgspec
import numpy as np
import onnxruntime as ort

from shared_schema import Car
from shared_schema.bundle import read_verified
from shared_schema.feeds import feeds_from_cars


@bentoml.service(
    workers=1,
    threads=1,
    traffic={"timeout": 10},
    metrics={"enabled": False},
    logging={"access": {"enabled": False}},
)
class CarPrice:
    """One ORT session on the bundle our server serves."""

    def __init__(self) -> None:
        bundle = read_verified(Path(os.environ["PEER_BUNDLE_DIR"]))
        manifest = bundle.manifest
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            bundle.model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.inputs = manifest.inputs
        self.outputs = list(manifest.outputs())
        self.version = manifest.model_version

    @bentoml.api(
        batchable=True,
        max_batch_size=int(os.environ["PEER_MAX_BATCH_SIZE"]),
        max_latency_ms=int(os.environ["PEER_MAX_LATENCY_MS"]),
    )
    def predict(self, cars: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Prices (and interval bounds) of the cars of every request in the batch."""
        decoded = msgspec.convert(cars, list[Car])
        columns = self.session.run(self.outputs, feeds_from_cars(decoded, self.inputs))
        rows = np.hstack([np.asarray(column, dtype=np.float64) for column in columns])
        names = ("price_rub", "price_lower_rub", "price_upper_rub")[: rows.shape[1]]
        return [
            {"model_version": self.version, **dict(zip(names, row.tolist(), strict=True))}
            for row in rows
        ]
