"""The champion's forest in each ONNX representation tried, beside LightGBM, lleaves and pandas.

One process, one run: every representation is built from the same booster by the exporter's
own code (`onnx_graph.build_graph(forest=...)`), checked for parity on every held-out row (price
and both bounds, `exporter.parity`), and timed at each batch size next to `Booster.predict`,
lleaves and the training pipeline. Run it pinned to one core, as `make bench` pins the model
level, after `make train` (it reads the trained pipeline and the test split):

    taskset -c 1 uv run --frozen python -m studies.forest_representation.run

It prints one Markdown table (what issue 21's closing note asks for) and writes it with its JSON
under `studies/forest_representation/results/`. Timings are medians of repeated calls; the cold
one-car call sleeps 20 ms between calls (caches cool, as for a lone car on a quiet server),
another held-out car each time, the runtimes taking turns over eight rounds (`_cold_us`).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import onnx
import pandas as pd
from benchmarks.champion import Champion, car_dicts, held_out_rows, take
from benchmarks.model_bench import compile_lleaves

from shared_schema import Car
from shared_schema.bundle import LOWER_OUTPUT, PRICE_OUTPUT, UPPER_OUTPUT
from shared_schema.feeds import feeds_from_cars

RESULTS = Path(__file__).with_name("results")
#: Held-out cars for the cold one-car column: 80 calls per runtime, 8 rounds of 10.
_COLD_CARS = 80
REPRESENTATIONS = {
    "chains": "onnxmltools' TreeEnsembleRegressor: each categorical set a chain of BRANCH_EQ",
    "sets": "one TreeEnsemble (ai.onnx.ml 5), a BRANCH_MEMBER per set on the field's code",
    "class_columns": "sets on class columns, each a 64-bit mask; two grouped inputs, one encoder,"
    " NaN routed in the trees, the interval as a small tree",
    "thresholds": "every split a BRANCH_LEQ (one node mode): categorical sets as thresholds on"
    " threshold columns, front and back as class_columns",
    "thresholds_f32": "thresholds, the forest and its front in float32 (shipped)",
}


def _median_us(call: Callable[[], object], rows: int, budget_s: float) -> float:
    for _ in range(3):
        call()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < 5 or time.perf_counter() < deadline:
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1e6 / rows


def _cold_us(calls: dict[str, list[Callable[[], object]]], rounds: int = 8) -> dict[str, float]:
    """Each runtime's one-car call 20 ms after the last, in interleaved rounds.

    Every call prices another held-out car (a lone car on a quiet server is rarely the last
    one again), and the runtimes take turns round by round, so a machine whose state drifts
    moves them alike: the median over all of a runtime's calls.
    """
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(rounds):
        for name, cars in calls.items():
            for index in range(round_, len(cars), rounds):
                time.sleep(0.02)
                started = time.perf_counter()
                cars[index]()
                times[name].append(time.perf_counter() - started)
    return {name: float(np.median(spent)) * 1e6 for name, spent in times.items()}


def _forest_nodes(graph: onnx.ModelProto) -> int:
    for node in graph.graph.node:
        for attribute in node.attribute:
            if attribute.name == "nodes_modes":
                value = onnx.helper.get_attribute_value(attribute)
                return len(value) if isinstance(value, list) else int(np.prod(value.dims))
    return 0


# A fresh interpreter per graph: onnxruntime reuses memory a closed session freed.
_SESSION_MB = (
    "import resource, sys, onnxruntime as ort\n"
    "def rss(): return int(open('/proc/self/statm').read().split()[1]) * resource.getpagesize()\n"
    "before = rss(); s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
    "print((rss() - before) / 1e6)"
)


def _session_mb(model_bytes: bytes) -> float:
    """Resident memory a fresh process gains by opening the graph."""
    with tempfile.NamedTemporaryFile(suffix=".onnx") as graph:
        graph.write(model_bytes)
        graph.flush()
        command = [sys.executable, "-c", _SESSION_MB, graph.name]
        return float(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def measure(
    pipeline_dir: Path,
    rows_file: Path,
    sizes: list[int],
    budget_s: float,
    *,
    forms: list[str],
    reference_dir: Path | None = None,
    saved: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """Every representation and baseline at every size, with parity and sizes.

    `reference_dir`, another trained pipeline (the previous champion), adds lleaves on its
    booster to the same run, so a ratio against it is measured beside the rest. `saved` adds
    graphs from files (label → .onnx of the same booster, e.g. one an earlier exporter wrote),
    each fed its own inputs and checked for parity like the rest.
    """
    import onnxruntime as ort

    from inference.model import session_options
    from training.core.encoding import feature_matrix
    from training.io import onnx_graph
    from training.io.exporter import parity

    champion = Champion(Path("unused"), pipeline_dir)
    pipeline = champion.pipeline
    frame = held_out_rows(rows_file)
    check = frame.reset_index(drop=True)
    results: dict[str, Any] = {"onnxruntime": ort.__version__, "rows": len(frame), "runs": {}}
    # Other processes' load says how far to trust absolute figures (ratios are one run's).
    results["load_before"] = os.getloadavg()
    outputs = [PRICE_OUTPUT, LOWER_OUTPUT, UPPER_OUTPUT]
    graphs: list[tuple[str, Callable[[], bytes]]] = [
        (name, partial(champion.graph_bytes, name)) for name in forms
    ]
    graphs += [(label, path.read_bytes) for label, path in (saved or {}).items()]
    # Per runtime, one call per cold car, timed together at the end (`_cold_us`).
    lone = [frame.iloc[[index]] for index in range(min(_COLD_CARS, len(frame)))]
    cold: dict[str, list[Callable[[], object]]] = {}
    for name, build in graphs:
        model_bytes = build()
        graph = onnx.load_from_string(model_bytes)
        inputs = onnx_graph.input_spec(graph)
        session = ort.InferenceSession(
            model_bytes, sess_options=session_options(1), providers=["CPUExecutionProvider"]
        )
        entry: dict[str, Any] = {
            "nodes": _forest_nodes(graph),
            "graph_nodes": len(graph.graph.node),
            "inputs": len(graph.graph.input),
            "graph_mb": len(model_bytes) / 1e6,
            "session_mb": _session_mb(model_bytes),
            "parity": parity(model_bytes, inputs, pipeline, check),
        }
        for size in [*sizes, 1]:
            cars = msgspec.convert(car_dicts(take(frame, size)), list[Car])
            call: Callable[[], object] = partial(
                session.run, outputs, feeds_from_cars(cars, inputs)
            )
            entry[str(size)] = _median_us(call, size, budget_s)
        cold[name] = [
            partial(session.run, outputs, feeds_from_cars(cars, inputs))
            for cars in (msgspec.convert(car_dicts(one), list[Car]) for one in lone)
        ]
        results["runs"][name] = entry
    lleaves, _ = compile_lleaves(champion.booster_file, Path("data/bench/lleaves"))

    def baseline(name: str, rows: pd.DataFrame) -> Callable[[], object]:
        matrix = np.ascontiguousarray(
            feature_matrix(rows, pipeline.vocabulary).to_numpy(np.float64)
        )
        if name == "booster":
            return partial(pipeline.booster.predict, matrix, num_threads=1)
        if name == "lleaves":
            return partial(lleaves.predict, matrix, n_jobs=1)
        return partial(pipeline.predict_price, rows)

    for name in ("booster", "lleaves", "pipeline"):
        entry = {}
        for size in [*sizes, 1]:
            call = baseline(name, take(frame, size))
            entry[str(size)] = _median_us(call, size, budget_s)
        cold[name] = [baseline(name, one) for one in lone]
        results["runs"][name] = entry
    if reference_dir is not None:
        reference = Champion(Path("unused"), reference_dir)
        compiled, _ = compile_lleaves(reference.booster_file, Path("data/bench/lleaves"))
        entry = {}
        for size in [*sizes, 1]:
            call = partial(compiled.predict, reference.encode(take(frame, size)), n_jobs=1)
            entry[str(size)] = _median_us(call, size, budget_s)
        label = f"lleaves on {reference_dir}"
        cold[label] = [partial(compiled.predict, reference.encode(one), n_jobs=1) for one in lone]
        results["runs"][label] = entry
    for name, cold_us in _cold_us(cold).items():
        results["runs"][name]["cold_1"] = cold_us
    results["load_after"] = os.getloadavg()
    return results


def table(results: dict[str, Any], sizes: list[int]) -> str:
    """The results as Markdown: one row per representation or baseline."""
    head = ["runtime", "forest nodes", "graph nodes / inputs", "graph MB", "session MB"]
    head += [f"µs/row at {size:,}" for size in sizes] + ["cold 1-car µs", "parity (max rel)"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for name, entry in results["runs"].items():
        cells = [name, "–", "–", "–", "–"]
        if "nodes" in entry:
            cells[1:] = [f"{entry['nodes']:,}", f"{entry['graph_nodes']} / {entry['inputs']}"]
            cells += [f"{entry['graph_mb']:.1f}", f"{entry['session_mb']:.0f}"]
        cells += [f"{entry[str(size)]:.2f}" for size in sizes] + [f"{entry['cold_1']:.1f}"]
        cells.append(f"{entry['parity']:.2g}" if "parity" in entry else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, default=Path("data/train"))
    parser.add_argument("--rows", type=Path, default=Path("data/splits/test.parquet"))
    parser.add_argument("--sizes", default="1,1000,10000")
    parser.add_argument(
        "--forms", default=",".join(REPRESENTATIONS), help="representations to build and time"
    )
    parser.add_argument(
        "--reference", type=Path, help="another trained pipeline: lleaves on its booster too"
    )
    parser.add_argument(
        "--graph",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="also time this saved graph of the same booster (repeatable)",
    )
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per timed cell")
    parser.add_argument("--out", type=Path, default=RESULTS / f"representations-{date.today()}")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    forms = args.forms.split(",")
    unknown = sorted(set(forms) - set(REPRESENTATIONS))
    if unknown:
        parser.error(f"unknown representation {unknown}; known: {', '.join(REPRESENTATIONS)}")
    saved = {}
    for item in args.graph:
        label, _, path = item.partition("=")
        if not path or not Path(path).is_file():
            parser.error(f"--graph {item!r}: expected LABEL=PATH to an .onnx file")
        saved[label] = Path(path)
    results = measure(
        args.pipeline,
        args.rows,
        sizes,
        args.budget,
        forms=forms,
        reference_dir=args.reference,
        saved=saved,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    load = ", ".join(f"{value:.2f}" for value in [*results["load_before"], *results["load_after"]])
    text = f"{args.pipeline}: onnxruntime {results['onnxruntime']}, "
    text += f"{results['rows']:,} held-out rows, one run, "
    text += f"{os.cpu_count()} CPUs, load average before / after: {load}\n\n"
    text += table(results, sizes) + "\n"
    args.out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
