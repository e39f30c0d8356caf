"""Model level: the cost per row of the champion in four runtimes, timed by pytest-benchmark.

(a) our ONNX graph in onnxruntime, one thread, raw strings in (preprocessing in the graph);
(b) the training-time pipeline fed a pandas DataFrame; (c) LightGBM's `Booster.predict` on the
already-encoded matrix; (d) lleaves compiled from the same booster. Two more rows show what a
request pays around the model: (a+) the server's feed builder from decoded `Car` structs, and
(b+) building the DataFrame from JSON dicts. Inputs are prepared outside the timed call.
(a−) is the graph as exported before issue 21 (each categorical set on the field's code, most
too large for onnxruntime's bitmask), rebuilt from the same booster; the cold rows time one
car 20 ms after the last call (caches cool, as for a lone car on a quiet server). Small batches
take different cars call after call: `--distinct-cars` (1,000) cars cut into batches of the
size, in turn (one car: 1,000 calls in turn; 10 rows: 100; 1,000 rows and up: one batch). The
same cars timed again find the CPU's branch predictor trained on their walk through the trees,
and read too fast (one row of the forest: 2.6-3.5x; the layout study's runs, in
`studies/README.md`, "Distinct rows"). Never more cars than
the held-out frame has. The prepared inputs are cycled, so they are read from cache less warm
than a request's just-decoded one: the strings of the ONNX feeds more than lleaves' one row.
`benchmarks.run` runs this file pinned to one core; options in `benchmarks/conftest.py`.
"""

import hashlib
import itertools
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np
import pandas as pd
import pytest

from benchmarks.champion import NO_BOOSTER, Champion, car_dicts, take
from shared_schema import Car
from shared_schema.bundle import MODEL_FILE, PRICE_OUTPUT, ManifestInput
from shared_schema.feeds import feeds_from_cars

VARIANTS: Final = {
    "onnx": "(a) ONNX graph in onnxruntime, 1 thread, raw strings in",
    "onnx_from_structs": "(a+) same, plus the server's feeds_from_cars from Car structs",
    "onnx_cold": "(a) one car, 20 ms after the last call",
    "onnx_before": "(a−) the graph before issue 21: sets on the codes, 1 thread",
    "onnx_before_cold": "(a−) one car, 20 ms after the last call",
    "pipeline": "(b) training-time pipeline on a pandas DataFrame",
    "pipeline_from_dicts": "(b+) same, plus pd.DataFrame(list of dicts) per call",
    "booster": "(c) LightGBM Booster.predict on encoded numpy, 1 thread",
    "lleaves": "(d) lleaves compiled from the same booster, 1 thread",
}
PARITY_ROWS: Final = 1_000
#: The cold rows: idle time before each timed call, and how many calls.
COLD_GAP_S: Final = 0.02
COLD_ROUNDS: Final = 50
# LLVM needs minutes and gigabytes for a large forest: bounded, and cached by booster hash.
_COMPILE_TIMEOUT_S: Final = 3600
_COMPILE: Final = (
    "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (14 * 1024**3,) * 2); "
    "import lleaves; lleaves.Model(model_file=sys.argv[1]).compile(cache=sys.argv[2])"
)


def compile_lleaves(booster_file: Path, cache: Path) -> tuple[Any, str]:
    """The booster compiled by lleaves (once per booster), and how long compiling took."""
    import lleaves

    digest = hashlib.sha256(booster_file.read_bytes()).hexdigest()[:16]
    library, record = cache / f"{digest}.so", cache / f"{digest}.txt"
    if not library.exists():
        cache.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        command = [sys.executable, "-c", _COMPILE, str(booster_file), str(library)]
        subprocess.run(command, check=True, timeout=_COMPILE_TIMEOUT_S)
        record.write_text(f"{time.perf_counter() - started:.0f}", encoding="utf-8")
    model = lleaves.Model(model_file=str(booster_file))
    model.compile(cache=str(library))
    seconds = record.read_text(encoding="utf-8").strip()
    return model, f"compiled in {seconds} s (cached by booster hash)"


def graph_note(graph_file: Path) -> str:
    """Which tree-ensemble operator the graph uses, and its size (the exporter decides both)."""
    import onnx

    graph = onnx.load(str(graph_file))
    nodes = graph.graph.node
    forests = sorted({f"{n.domain or 'ai.onnx'}.{n.op_type}" for n in nodes if "Tree" in n.op_type})
    opset = {o.domain: o.version for o in graph.opset_import}.get("ai.onnx.ml", "–")
    operators, size_mb = ", ".join(forests) or "none", graph_file.stat().st_size / 1e6
    return f"forest operator {operators} (ai.onnx.ml opset {opset}), graph {size_mb:.1f} MB"


class Runtimes:
    """Every runtime of one champion, opened once; `call` prepares one timed call."""

    def __init__(self, champion: Champion, frame: pd.DataFrame, lleaves_cache: Path) -> None:
        import onnxruntime as ort

        from inference.model import session_options

        self.champion, self.frame, graph = champion, frame, champion.bundle_dir / MODEL_FILE
        self.session = ort.InferenceSession(
            str(graph), sess_options=session_options(1), providers=["CPUExecutionProvider"]
        )
        self.inputs = champion.manifest.inputs
        self.notes: dict[str, dict[str, Any]] = {"onnx": {"note": graph_note(graph)}}
        self.lleaves: Any = None
        self.before: Any = None
        self.before_inputs: list[ManifestInput] = []
        if champion.pipeline_dir is None:
            self.notes["onnx"]["parity_vs_pipeline"] = f"not measured: {NO_BOOSTER}"
            return
        try:
            self.lleaves, note = compile_lleaves(champion.booster_file, lleaves_cache)
        except Exception as error:  # lleaves missing, LLVM out of time or memory: say so
            note = f"not measured: {error!r}"
        self.notes["lleaves"] = {"note": note}
        import onnx

        from training.io.onnx_graph import input_spec

        before = champion.graph_bytes("sets")
        # Its inputs are its own (one per field), not the served graph's grouped ones.
        self.before_inputs = input_spec(onnx.load_from_string(before))
        self.before = ort.InferenceSession(
            before, sess_options=session_options(1), providers=["CPUExecutionProvider"]
        )

    def call(self, variant: str, rows: pd.DataFrame) -> Callable[[], object]:
        """The timed call of `variant` on `rows`, its inputs prepared now."""
        session, inputs, outputs = self.session, self.inputs, [PRICE_OUTPUT]
        cars = msgspec.convert(car_dicts(rows), list[Car])
        if variant.startswith("onnx_before"):
            session, inputs = self.before, self.before_inputs
        if variant in ("onnx", "onnx_cold", "onnx_before", "onnx_before_cold"):
            feeds = feeds_from_cars(cars, inputs)
            return lambda: session.run(outputs, feeds)
        if variant == "onnx_from_structs":
            return lambda: session.run(outputs, feeds_from_cars(cars, self.inputs))
        pipeline, encoded = self.champion.pipeline, self.champion.encode(rows)
        if variant == "pipeline":
            return lambda: pipeline.predict_price(rows)
        if variant == "pipeline_from_dicts":
            dicts = car_dicts(rows)
            return lambda: pipeline.predict_price(pd.DataFrame(dicts))
        if variant == "booster":
            return lambda: pipeline.booster.predict(encoded, num_threads=1)
        if self.lleaves is None:
            pytest.skip(self.notes["lleaves"]["note"])
        return lambda: self.lleaves.predict(encoded, n_jobs=1)

    def parity(self) -> None:
        """Largest differences between runtimes on the same rows, added to their notes."""
        rows = take(self.frame, PARITY_ROWS)
        names = ("onnx", "onnx_before", "pipeline", "booster")
        names += ("lleaves",) if self.lleaves is not None else ()
        price = {name: np.asarray(self.call(name, rows)(), np.float64).ravel() for name in names}
        for graph in ("onnx", "onnx_before"):
            relative = np.max(np.abs(price[graph] / price["pipeline"] - 1))
            self.notes.setdefault(graph, {})["parity_vs_pipeline"] = float(relative)
        if self.lleaves is not None:
            absolute = np.max(np.abs(price["lleaves"] - price["booster"]))
            self.notes["lleaves"]["parity_vs_booster_abs"] = float(absolute)


def _in_turn(calls: list[Callable[[], object]]) -> Callable[[], object]:
    """One call that runs `calls` in turn, the next one each time."""
    turn = itertools.cycle(calls)

    def call() -> object:
        return next(turn)()

    return call


@pytest.fixture(scope="session")
def runtimes(model: tuple[Champion, pd.DataFrame], pytestconfig: pytest.Config) -> Runtimes:
    """The champion's runtimes, with their parity measured."""
    opened = Runtimes(*model, pytestconfig.getoption("lleaves_cache"))
    if opened.champion.pipeline_dir is not None:
        opened.parity()
    return opened


@pytest.mark.parametrize("variant", VARIANTS)
def test_model(
    benchmark: Any, runtimes: Runtimes, variant: str, rows: int, pytestconfig: pytest.Config
) -> None:
    """Time one runtime at one batch size; its notes go into pytest-benchmark's JSON."""
    needs_booster = not variant.startswith("onnx") or variant.startswith("onnx_before")
    if needs_booster and runtimes.champion.pipeline_dir is None:
        pytest.skip(NO_BOOSTER)
    if variant.endswith("_cold") and rows != 1:
        pytest.skip("the cold call is a one-car figure")
    distinct = min(pytestconfig.getoption("distinct_cars"), len(runtimes.frame))
    batches = max(1, distinct // rows)
    cars = take(runtimes.frame, batches * rows)
    call = _in_turn(
        [
            runtimes.call(variant, cars.iloc[start : start + rows].reset_index(drop=True))
            for start in range(0, len(cars), rows)
        ]
    )
    benchmark.group = f"{rows} rows"
    benchmark.extra_info.update(runtimes.notes.get(variant, {}))
    if variant.endswith("_cold"):
        benchmark.pedantic(
            call, setup=lambda: time.sleep(COLD_GAP_S), rounds=COLD_ROUNDS, iterations=1
        )
    else:
        benchmark(call)
