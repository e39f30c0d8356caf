"""Model-level benchmark: per-row cost of the champion in four runtimes at five batch sizes.

(a) our ONNX graph in onnxruntime, one thread, raw strings in (preprocessing in the graph);
(b) the training-time pipeline fed a pandas DataFrame; (c) LightGBM's native
`Booster.predict` on the already-encoded numpy matrix; (d) lleaves, compiled from the same
booster. Two extra rows show what a request pays around the model: (a+) the server's
`build_feeds` from decoded `Car` structs, and (b+) building the DataFrame from JSON dicts.

Each timing is the median of repeated calls after warm-up calls that are not counted. Run
pinned to one core (`benchmarks.run` does that) so no runtime gets a second one.

    python -m benchmarks.model_bench --out model.json
"""

import argparse
import hashlib
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from benchmarks.champion import Champion, load_champion
from benchmarks.data import car_dicts, held_out_rows
from benchmarks.standin import quiet_sklearn
from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES, NUMERIC_FIELDS

logger = logging.getLogger(__name__)

BATCH_SIZES: Final = (1, 10, 100, 1_000, 10_000)
LLEAVES_CACHE: Final = Path("data/bench/lleaves")
LLEAVES_COMPILE_TIMEOUT_S: Final = 1800
LLEAVES_MEMORY_LIMIT: Final = 14 * 1024**3
_WARMUP_CALLS: Final = 3
_MIN_REPEATS: Final = 5
_MAX_REPEATS: Final = 3_000
_TARGET_SECONDS: Final = 0.6

VARIANTS: Final = {
    "onnx": "(a) ONNX graph in onnxruntime, 1 thread, raw strings in",
    "onnx_from_structs": "(a+) same, plus the server's build_feeds from Car structs",
    "pipeline": "(b) training-time pipeline on a pandas DataFrame",
    "pipeline_from_dicts": "(b+) same, plus pd.DataFrame(list of dicts) per call",
    "booster": "(c) LightGBM Booster.predict on encoded numpy, 1 thread",
    "lleaves": "(d) lleaves compiled from the same booster, 1 thread",
}


def time_calls(call: Callable[[], object], *, quick: bool = False) -> dict[str, float]:
    """Median wall time of `call` in seconds, after uncounted warm-up calls."""
    for _ in range(1 if quick else _WARMUP_CALLS):
        call()
    timings: list[float] = []
    deadline = time.perf_counter() + (0.0 if quick else _TARGET_SECONDS)
    while len(timings) < (1 if quick else _MIN_REPEATS) or (
        time.perf_counter() < deadline and len(timings) < _MAX_REPEATS
    ):
        start = time.perf_counter_ns()
        call()
        timings.append((time.perf_counter_ns() - start) / 1e9)
    return {"median_s": statistics.median(timings), "repeats": len(timings)}


def onnx_feeds(frame: pd.DataFrame) -> dict[str, npt.NDArray[Any]]:
    """Raw columns as graph inputs: object arrays of str, float32 with NaN for missing."""
    feeds: dict[str, npt.NDArray[Any]] = {}
    for name in CATEGORICAL_FIELDS:
        feeds[name] = frame[name].astype(object).to_numpy().reshape(-1, 1)
    for name in NUMERIC_FIELDS:
        feeds[name] = frame[name].to_numpy(dtype=np.float32, na_value=np.nan).reshape(-1, 1)
    return feeds


def compile_lleaves(booster_file: Path, cache_dir: Path = LLEAVES_CACHE) -> tuple[Path, str]:
    """Compile the booster with lleaves in a subprocess (bounded in time and memory).

    The library is cached by the booster's hash, with the compile time beside it, so a
    model is compiled once however often the benchmark runs.

    Returns:
        The compiled library and a note saying how long compiling took.

    Raises:
        RuntimeError: lleaves fails, or exceeds the time or memory bound.
    """
    digest = hashlib.sha256(booster_file.read_bytes()).hexdigest()[:16]
    library = cache_dir / f"{digest}.so"
    record = cache_dir / f"{digest}.json"
    if library.exists() and record.exists():
        seconds = json.loads(record.read_text(encoding="utf-8"))["compile_s"]
        return library, f"compiled in {seconds:.0f} s (once; cached by booster hash)"
    cache_dir.mkdir(parents=True, exist_ok=True)
    # LLVM needs gigabytes for a large forest: the address-space cap keeps it from starving
    # the machine.
    script = (
        "import resource, sys; "
        "resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[3]), int(sys.argv[3]))); "
        "import lleaves; lleaves.Model(model_file=sys.argv[1]).compile(cache=sys.argv[2])"
    )
    start = time.perf_counter()
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                script,
                str(booster_file),
                str(library),
                str(LLEAVES_MEMORY_LIMIT),
            ],
            capture_output=True,
            text=True,
            timeout=LLEAVES_COMPILE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"lleaves compile exceeded {LLEAVES_COMPILE_TIMEOUT_S} s") from error
    if result.returncode != 0 or not library.exists():
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"lleaves compile failed: {' | '.join(tail)}")
    seconds = time.perf_counter() - start
    record.write_text(json.dumps({"compile_s": seconds}), encoding="utf-8")
    return library, f"compiled in {seconds:.0f} s"


def graph_note(graph_file: Path) -> str:
    """Which tree-ensemble operator the graph uses, and its size (the export decides both)."""
    import onnx

    model = onnx.load(str(graph_file))
    forests = sorted(
        {f"{n.domain or 'ai.onnx'}.{n.op_type}" for n in model.graph.node if "Tree" in n.op_type}
    )
    opsets = {o.domain: o.version for o in model.opset_import}
    return (
        f"forest operator {', '.join(forests) or 'none'} (ai.onnx.ml opset "
        f"{opsets.get('ai.onnx.ml', '–')}), graph {graph_file.stat().st_size / 1e6:.1f} MB"
    )


def _rows(frame: pd.DataFrame, count: int) -> pd.DataFrame:
    """`count` held-out rows, repeating the split if it is smaller."""
    if len(frame) >= count:
        return frame.iloc[:count].reset_index(drop=True)
    repeats = -(-count // len(frame))
    return pd.concat([frame] * repeats, ignore_index=True).iloc[:count]


def _runners(
    champion: Champion, notes: dict[str, str], lleaves_cache: Path
) -> dict[str, Callable[[pd.DataFrame], Callable[[], object]]]:
    """Per variant: given the rows, prepare the inputs (untimed) and return the timed call."""
    import msgspec
    import onnxruntime as ort

    from inference.model import session_options
    from shared_schema import Car
    from shared_schema.bundle import feeds_from_cars

    session = ort.InferenceSession(
        str(champion.bundle_dir / "model.onnx"),
        sess_options=session_options(1),
        providers=["CPUExecutionProvider"],
    )
    notes["onnx"] = graph_note(champion.bundle_dir / "model.onnx")
    booster = champion.booster

    def onnx(rows: pd.DataFrame) -> Callable[[], object]:
        feeds = onnx_feeds(rows)
        return lambda: session.run(["price"], feeds)

    def onnx_from_structs(rows: pd.DataFrame) -> Callable[[], object]:
        cars = msgspec.convert(car_dicts(rows), list[Car])
        return lambda: session.run(["price"], feeds_from_cars(cars))

    def pipeline(rows: pd.DataFrame) -> Callable[[], object]:
        raw = rows[list(FIELD_NAMES)].copy()
        return lambda: champion.pipeline.predict(raw)

    def pipeline_from_dicts(rows: pd.DataFrame) -> Callable[[], object]:
        dicts = car_dicts(rows)
        return lambda: champion.pipeline.predict(pd.DataFrame(dicts))

    def native(rows: pd.DataFrame) -> Callable[[], object]:
        encoded = champion.encode(rows)
        return lambda: booster.predict(encoded, num_threads=1)

    runners: dict[str, Callable[[pd.DataFrame], Callable[[], object]]] = {
        "onnx": onnx,
        "onnx_from_structs": onnx_from_structs,
        "pipeline": pipeline,
        "pipeline_from_dicts": pipeline_from_dicts,
        "booster": native,
    }
    try:
        import lleaves

        library, notes["lleaves"] = compile_lleaves(champion.booster_file, lleaves_cache)
        compiled = lleaves.Model(model_file=str(champion.booster_file))
        compiled.compile(cache=str(library))

        def with_lleaves(rows: pd.DataFrame) -> Callable[[], object]:
            encoded = champion.encode(rows)
            return lambda: compiled.predict(encoded, n_jobs=1)

        runners["lleaves"] = with_lleaves
    except (ImportError, RuntimeError) as error:
        notes["lleaves"] = f"not measured: {error}"
    return runners


def _parity(frame: pd.DataFrame, runners: dict[str, Any]) -> dict[str, float]:
    """Largest relative differences between the runtimes on the same 1,000 rows."""
    rows = _rows(frame, 1_000)
    outputs = {
        name: np.asarray(make(rows)(), dtype=np.float64).ravel() for name, make in runners.items()
    }
    parity = {
        "onnx_vs_pipeline": float(np.max(np.abs(outputs["onnx"] / outputs["pipeline"] - 1))),
    }
    if "lleaves" in outputs:
        parity["lleaves_vs_booster_abs"] = float(
            np.max(np.abs(outputs["lleaves"] - outputs["booster"]))
        )
    return parity


def measure(
    champion: Champion,
    frame: pd.DataFrame,
    *,
    sizes: tuple[int, ...] = BATCH_SIZES,
    quick: bool = False,
    lleaves_cache: Path = LLEAVES_CACHE,
) -> dict[str, Any]:
    """Time every runtime at every batch size on `frame`'s rows.

    Args:
        champion: The model in all its forms.
        frame: Held-out rows (repeated when fewer than the largest batch).
        sizes: Batch sizes.
        quick: One call per measurement (for the smoke test).
        lleaves_cache: Where compiled lleaves libraries are kept.

    Returns:
        Per variant and batch size: median call time, repeats and µs per row; the parity
        between runtimes; notes (how lleaves went).
    """
    notes: dict[str, str] = {}
    runners = _runners(champion, notes, lleaves_cache)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, make in runners.items():
        results[name] = {}
        for size in sizes:
            timing = time_calls(make(_rows(frame, size)), quick=quick)
            timing["us_per_row"] = timing["median_s"] / size * 1e6
            results[name][str(size)] = timing
            logger.info("%-20s %6d rows: %10.2f µs/row", name, size, timing["us_per_row"])
    return {
        "variants": {name: VARIANTS[name] for name in runners},
        "results": results,
        "parity": _parity(frame, runners),
        "notes": notes,
    }


def run(quick: bool = False, root: Path = Path(), which: str = "auto") -> dict[str, Any]:
    """Measure the champion (or stand-in) on the held-out rows.

    Args:
        quick: One call per measurement and only batch sizes 1 and 10.
        root: Repository root.
        which: "real", "standin" or "auto" (the real champion when it exists).

    Returns:
        `measure`'s results with the model and the conditions.
    """
    champion = load_champion(root, which=which)
    frame = held_out_rows(root, standin=champion.standin)
    measured = measure(
        champion, frame, sizes=BATCH_SIZES[:2] if quick else BATCH_SIZES, quick=quick
    )
    return {
        "model": champion.label,
        "standin": champion.standin,
        "model_version": champion.model_version,
        "held_out_rows": len(frame),
        **measured,
        "threads": "all runtimes 1 thread; process pinned to one core",
        "affinity": sorted(os.sched_getaffinity(0)),
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the model benchmark and write its JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.model_bench", description=__doc__)
    parser.add_argument("--out", type=Path, help="write the results JSON here")
    parser.add_argument("--quick", action="store_true", help="one call per cell, sizes 1 and 10")
    parser.add_argument("--model", default="auto", choices=["auto", "real", "standin"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_sklearn()
    results = run(quick=args.quick, which=args.model)
    text = json.dumps(results, indent=2, ensure_ascii=False)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
