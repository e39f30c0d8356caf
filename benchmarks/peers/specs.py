"""The peers as servers under test: how each starts, what one car's request is, its answer.

MLServer (LightGBM runtime) serves the booster: its request is the V2 inference protocol with
the booster's encoded row, which the client builds with the training pipeline's encoding
(`Champion.encode`), so MLServer does less per request than we do (no decoding of car fields,
no encoding); its answer is the booster's raw score, log-price before the pipeline's offset.
BentoML serves our ONNX bundle from raw car fields, as we do. Both start like ours: pinned to
the server core by `RunningServer`, `OMP_NUM_THREADS=1`, one worker.
"""

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from benchmarks.champion import Champion, request_bodies
from benchmarks.goals import load_goals
from benchmarks.peers.envs import BENTOML, MLSERVER, PEERS_DIR, PeerEnv
from benchmarks.servers import ServerSpec, free_port


@dataclass(frozen=True)
class Peer:
    """A peer server: how to start it, its one-car requests, and the price in its answer."""

    spec: ServerSpec
    port: int
    env: PeerEnv
    #: One-car requests to `spec.predict_path`, one per car of the frame, in its order.
    bodies: list[bytes]
    #: The price in roubles from one answer's body.
    price: Callable[[bytes], float]
    #: The settings it runs with, for the results.
    settings: dict[str, Any]


def mlserver_bodies(matrix: npt.NDArray[np.float64]) -> list[bytes]:
    """One V2 inference request per row of the booster's input matrix, FP64.

    A missing number is `null` (JSON has no NaN; MLServer's decoder rejects it), which NumPy
    turns back into NaN in the FP64 tensor: LightGBM's missing value.
    """
    width = matrix.shape[1]
    return [
        json.dumps(
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [1, width],
                        "datatype": "FP64",
                        "data": [None if math.isnan(value) else value for value in row],
                    }
                ]
            }
        ).encode()
        for row in matrix.tolist()
    ]


def bentoml_bodies(frame: pd.DataFrame) -> list[bytes]:
    """One request per car for the BentoML service: `{"cars": [car]}` (its batchable input)."""
    return [b'{"cars": [' + body + b"]}" for body in request_bodies(frame)]


def mlserver_repository(booster: Path, folder: Path) -> dict[str, Any]:
    """MLServer's folder for this run: the settings files, filled with run-time values.

    The booster's path and the batch size (ours, `Settings.batch_max_rows`) are added to the
    committed `model-settings.json`; `settings.json` is copied as is.

    Returns:
        The server-wide and model settings, as MLServer reads them.
    """
    from inference.settings import Settings

    model = json.loads((PEERS_DIR / "mlserver" / "model-settings.json").read_text())
    model_dir = folder / model["name"]
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PEERS_DIR / "mlserver" / "settings.json", folder / "settings.json")
    model["max_batch_size"] = Settings().batch_max_rows
    model["parameters"] = {"uri": str(booster.resolve())}
    (model_dir / "model-settings.json").write_text(json.dumps(model, indent=2))
    server = json.loads((folder / "settings.json").read_text())
    return {"settings.json": server, "model-settings.json": model}


def mlserver_peer(champion: Champion, frame: pd.DataFrame, work: Path) -> Peer:
    """MLServer on the champion's booster (needs the training pipeline), settings written."""
    log_offset = float(champion.pipeline.log_offset)

    def price(body: bytes) -> float:  # the booster's score is log-price less the offset
        return math.exp(json.loads(body)["outputs"][0]["data"][0] + log_offset)

    port, grpc_port = free_port(), free_port()
    settings = mlserver_repository(champion.booster_file, work / "mlserver")
    env = {
        "MLSERVER_HTTP_PORT": str(port),
        "MLSERVER_GRPC_PORT": str(grpc_port),
        "VIRTUAL_ENV": str(MLSERVER.root),
    }
    return Peer(
        ServerSpec(
            "mlserver",
            "MLServer 1 worker (LightGBM runtime, adaptive batching on)",
            (str(MLSERVER.bin / "mlserver"), "start", str(work / "mlserver")),
            env,
            ready_path="/v2/health/ready",
            predict_path=f"/v2/models/{settings['model-settings.json']['name']}/infer",
            health_path="/v2/health/live",  # its liveness probe: no model involved
        ),
        port,
        MLSERVER,
        mlserver_bodies(champion.encode(frame)),
        price,
        settings | {"ports": {"http": port, "grpc": grpc_port}},
    )


def bentoml_peer(bundle_dir: Path, frame: pd.DataFrame, work: Path) -> Peer:
    """BentoML on the bundle; the batch limits are ours and the sustained p95 bound."""
    from inference.settings import Settings

    def price(body: bytes) -> float:
        return float(json.loads(body)[0]["price_rub"])

    port = free_port()
    limits = {
        "PEER_MAX_BATCH_SIZE": str(Settings().batch_max_rows),
        "PEER_MAX_LATENCY_MS": str(int(load_goals().sustained.max_p95_ms)),
    }
    env = {
        "PEER_BUNDLE_DIR": str(bundle_dir.resolve()),
        **limits,
        # No usage analytics sent home, and BentoML's store kept out of the home directory.
        "BENTOML_DO_NOT_TRACK": "true",
        "BENTOML_HOME": str(work / "bentoml-home"),
        "VIRTUAL_ENV": str(BENTOML.root),
    }
    serve = (
        *(str(BENTOML.bin / "bentoml"), "serve", "service:CarPrice", "--host", "127.0.0.1"),
        *("--port", str(port), "--working-dir", str(PEERS_DIR / "bentoml")),
    )
    return Peer(
        ServerSpec(
            "bentoml",
            "BentoML 1 worker (ORT on our ONNX graph, adaptive batching on)",
            serve,
            env,
            ready_path="/readyz",
            health_path="/livez",  # its liveness probe: no model involved
        ),
        port,
        BENTOML,
        bentoml_bodies(frame),
        price,
        {"service": "benchmarks/peers/bentoml/service.py (decorators)", **limits},
    )


def peers(champion: Champion, frame: pd.DataFrame, work: Path) -> dict[str, Peer]:
    """Both peers, their requests built from `frame` (in its order), settings written.

    Needs the training pipeline (MLServer serves its booster); the environments need not
    exist yet (`PeerEnv.ensure` builds them).
    """
    return {
        "mlserver": mlserver_peer(champion, frame, work),
        "bentoml": bentoml_peer(champion.bundle_dir, frame, work),
    }
