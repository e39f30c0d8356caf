"""The model's accuracy–serving-cost frontier: which forest to ship.

For every candidate in `studies/frontier/candidates.toml` (booster parameters over the
pipeline's own `train.lightgbm`):

* **accuracy**: 5-fold cross-validation on the train + validation splits (the test split is
  never looked at to choose): in each fold the booster trains on 90 % of the other folds,
  stops early and fits its price scale on the remaining 10 %, and is scored (MAPE) on the held-out
  fold. Every candidate sees the same folds, so differences are paired;
* **serving cost** of the exported graph: the candidate is trained once on the train split
  (early stopping on validation, as `car-train train` does), exported with the pipeline's own
  exporter, and measured in a fresh interpreter pinned to one core (`_measure_graph`): session
  memory (RSS growth when the session opens), cold start (session open + first run), graph size,
  and the µs of a one-car run back to back ("hot") and with 20 ms of idle between calls ("cold":
  what spread-out traffic sees once other work has evicted the forest from the caches).

It reads no benchmark results: it measures each candidate's graph itself, before anything is
served. Writes `studies/frontier/results/frontier-<date>-<host>.{json,md,png}`.
Run: `uv run --frozen python -m studies.frontier.run [--folds 5] [--only NAME ...]`.
"""

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import pandas as pd

from studies.frontier.report import markdown, plot

if TYPE_CHECKING:
    from training.core.model import PricePipeline

RESULTS = Path(__file__).parent / "results"
CANDIDATES = Path(__file__).parent / "candidates.toml"

# Runs in a fresh interpreter so the session's memory is not hidden by pages an earlier
# training freed; prints one JSON object.
_MEASURE = r"""
import json, resource, sys, time
import msgspec, numpy as np, onnxruntime as ort, pandas as pd, psutil
from shared_schema.bundle import PRICE_OUTPUT, ManifestInput
from training.io.onnx_scoring import frame_feeds
graph, rows_file, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
inputs = msgspec.json.decode(sys.argv[4], type=list[ManifestInput])
feeds = frame_feeds(pd.read_parquet(rows_file), inputs)
model = open(graph, "rb").read()
process = psutil.Process()
rss = process.memory_info().rss
start = time.perf_counter()
options = ort.SessionOptions()
options.intra_op_num_threads = options.inter_op_num_threads = 1
options.add_session_config_entry("session.intra_op.allow_spinning", "0")
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
session.run([PRICE_OUTPUT], {k: v[:1] for k, v in feeds.items()})
cold_start = time.perf_counter() - start
session_mb = (process.memory_info().rss - rss) / 1e6
order = np.random.default_rng(0).integers(0, len(next(iter(feeds.values()))), calls)
def one(i):
    row = {k: v[i:i + 1] for k, v in feeds.items()}
    t = time.perf_counter(); session.run([PRICE_OUTPUT], row); return time.perf_counter() - t
hot = [one(i) for i in order]
cold = []
for i in order:
    time.sleep(0.02); cold.append(one(i))
print(json.dumps({"session_mb": session_mb, "cold_start_ms": cold_start * 1e3,
    "hot_us_p50": float(np.median(hot)) * 1e6, "cold_us_p50": float(np.median(cold)) * 1e6,
    "cold_us_p95": float(np.percentile(cold, 95)) * 1e6}))
"""


def load_candidates(path: Path = CANDIDATES) -> dict[str, dict[str, Any]]:
    """Candidate name → booster parameters to overlay (the study's data file)."""
    with path.open("rb") as handle:
        return dict(tomllib.load(handle)["candidate"])


def cross_validate(frame: pd.DataFrame, params: dict[str, Any], folds: int) -> dict[str, Any]:
    """Paired K-fold MAPE of one candidate (see the module docstring for the protocol)."""
    from sklearn.model_selection import KFold

    from training.core.encoding import fit_vocabulary
    from training.core.model import calibrated, train_booster

    params = dict(params)
    categorical = bool(params.pop("categorical_splits", True))
    order = params.pop("category_order", "frequency")
    mapes, trees = [], []
    for k, (fit_rows, held_rows) in enumerate(
        KFold(folds, shuffle=True, random_state=0).split(frame)
    ):
        fit, held = frame.iloc[fit_rows], frame.iloc[held_rows]
        stop = np.random.default_rng(k).random(len(fit)) < 0.1
        pipeline, history = train_booster(
            fit[~stop],
            fit[stop],
            fit_vocabulary(fit[~stop], 2, order),
            params,
            num_boost_round=20_000,
            early_stopping_rounds=_patience(params),
            log_every=10**9,
            categorical_splits=categorical,
        )
        pipeline = calibrated(pipeline, fit[stop])
        price = held["price"].to_numpy(np.float64)
        mapes.append(float(np.mean(np.abs(pipeline.predict_price(held) - price) / price)))
        trees.append(history.best_iteration)
    return {
        "cv_mape": float(np.mean(mapes)),
        "cv_sd": float(np.std(mapes)),
        "folds": mapes,
        "cv_trees": float(np.mean(trees)),
    }


def _patience(params: dict[str, Any]) -> int:
    # The same patience in "learning" terms: 150 rounds at 0.05 is 7.5 units of step size.
    return max(50, round(7.5 / float(params["learning_rate"])))


@dataclass(frozen=True)
class FittedCandidate:
    """A candidate trained as the study trains it, and what it was trained with."""

    pipeline: "PricePipeline"
    best_iteration: int
    #: LightGBM's parameters, without the study's own keys below.
    booster: dict[str, Any]
    categorical_splits: bool
    category_order: str


def fit_candidate(
    train: pd.DataFrame, val: pd.DataFrame, params: dict[str, Any], min_category_count: int = 2
) -> FittedCandidate:
    """Train on train with early stopping on val (the study's rounds and patience), calibrated.

    `params` are booster parameters plus the study's keys `categorical_splits` (False: the codes
    as ordered numbers) and `category_order` (`fit_vocabulary`'s order).
    """
    from training.core.encoding import fit_vocabulary
    from training.core.model import calibrated, train_booster

    booster = dict(params)
    categorical = bool(booster.pop("categorical_splits", True))
    order = booster.pop("category_order", "frequency")
    pipeline, history = train_booster(
        train,
        val,
        fit_vocabulary(train, min_category_count, order),
        booster,
        num_boost_round=20_000,
        early_stopping_rounds=_patience(booster),
        log_every=10**9,
        categorical_splits=categorical,
    )
    return FittedCandidate(
        calibrated(pipeline, val), history.best_iteration, booster, categorical, str(order)
    )


def fit_and_export(
    train: pd.DataFrame, val: pd.DataFrame, params: dict[str, Any], out: Path
) -> dict[str, Any]:
    """Train on train (early stopping on val), export the graph to `out`, measure parity."""
    from training.io import onnx_graph, onnx_scoring

    fitted = fit_candidate(train, val, params)
    pipeline = fitted.pipeline
    graph = onnx_graph.build_graph(pipeline)
    out.write_bytes(graph.SerializeToString())
    forest = next(n for n in graph.graph.node if n.op_type == "TreeEnsemble")
    attributes = {a.name: a for a in forest.attribute}
    nodes = len(attributes["nodes_featureids"].ints) + len(attributes["leaf_targetids"].ints)
    feeds = onnx_scoring.frame_feeds(val, onnx_graph.input_spec(graph))
    graph_price = onnx_scoring.run_graph(out.read_bytes(), feeds)
    expected = pipeline.predict_price(val)
    price = val["price"].to_numpy(np.float64)
    return {
        "trees": fitted.best_iteration,
        "forest_nodes": nodes,
        "val_mape": float(np.mean(np.abs(expected - price) / price)),
        "graph_mb": out.stat().st_size / 1e6,
        "parity_max_rel_diff": float(np.max(np.abs(graph_price - expected) / expected)),
    }


def _measure_graph(graph: Path, rows: Path, calls: int) -> dict[str, float]:
    import onnx

    from training.io.onnx_graph import input_spec

    # The graph's own inputs, read here: the measuring interpreter imports no exporter.
    inputs = msgspec.json.encode(input_spec(onnx.load_model(graph))).decode()
    command = [
        "taskset",
        "-c",
        "0",
        sys.executable,
        "-c",
        _MEASURE,
        str(graph),
        str(rows),
        str(calls),
        inputs,
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(output)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the study and write its results."""
    parser = argparse.ArgumentParser(
        prog="python -m studies.frontier.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--only", nargs="*", help="candidate names (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from training.config import load_params
    from training.io import splits

    params = load_params(args.params)
    train, val, test = (splits.read(params.paths.splits, s) for s in ("train", "val", "test"))
    base = msgspec.to_builtins(params.train.lightgbm)
    candidates = load_candidates()
    names = args.only or list(candidates)
    started, load_before = time.time(), _load()
    workdir = Path("data/bench/frontier")
    workdir.mkdir(parents=True, exist_ok=True)
    rows_file = workdir / "rows.parquet"
    test.sample(n=min(len(test), 2000), random_state=0).to_parquet(rows_file)
    cv_frame = pd.concat([train, val], ignore_index=True)
    rows = []
    for name in names:
        candidate = {**base, **candidates[name]}
        print(f"{name}: {candidates[name]}", flush=True)
        row = {"name": name, "params": candidates[name]}
        row |= cross_validate(cv_frame, candidate, args.folds)
        row |= fit_and_export(train, val, candidate, workdir / f"{name}.onnx")
        row |= _measure_graph(workdir / f"{name}.onnx", rows_file, args.calls)
        print(json.dumps({k: v for k, v in row.items() if k != "folds"}), flush=True)
        rows.append(row)
    stamp = f"{datetime.now(tz=UTC):%Y-%m-%d}-{socket.gethostname()}"
    args.out.mkdir(parents=True, exist_ok=True)
    plot(rows, args.out / f"frontier-{stamp}.png")
    report = {
        "date": f"{datetime.now(tz=UTC):%Y-%m-%d}",
        "host": socket.gethostname(),
        "machine": f"{_cpus()}, Python {platform.python_version()}",
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True
        ).stdout.strip(),
        "load_before": load_before,
        "load_after": _load(),
        "seconds": time.time() - started,
        "folds": args.folds,
        "cv_rows": len(cv_frame),
        "calls": args.calls,
        "plot": f"frontier-{stamp}.png",
        "candidates": rows,
    }
    (args.out / f"frontier-{stamp}.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / f"frontier-{stamp}.md").write_text(markdown(report))
    print(markdown(report))
    return 0


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _cpus() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{os.cpu_count()} CPUs ({model})"


if __name__ == "__main__":
    sys.exit(main())
