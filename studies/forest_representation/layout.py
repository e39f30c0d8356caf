"""The shipped forest's walk in onnxruntime: what its layout costs, on the same nodes and prices.

Every variant here is the champion's `thresholds_f32` forest, the same splits and leaves, so
prices are identical (the study reports the largest difference on every held-out row: 0.0
but for the summed parts below).
Only where things sit changes:

* `padded`: the input matrix twice as wide (the extra columns unused): does the width of a
  row (820 float32 columns, most of them threshold columns) cost cache misses?
* `hot false`: each node tests its column so that its hotter child (more training rows reach
  it) is the false child. onnxruntime lays a tree out depth first with one child right after
  its parent; this measures which. A node is turned round by reading a negated copy of its
  column: `x <= t` becomes `-x <= -nextafter(t)`, exact for float32 inputs, the children and
  the missing-value track swapped. Every node stays `BRANCH_LEQ`.
* `hot true`: the opposite orientation, the same way.
* `hot false, GT`: the `hot false` orientation with `BRANCH_GT` nodes instead of negated
  columns, so the forest mixes two node modes.
* `no NaN tracks`: no node tracks a missing value. onnxruntime walks every node of a forest
  with an extra NaN test once any node has `missing_value_tracks_true` set (the export sets it
  on 25,423 of the 37,656 nodes, all of them numeric). Here a column's NaN is filled where its
  nodes send it (−inf: every node sends it to the true child; +inf: to the false child), and a
  column whose nodes disagree (only `engine_displacement`) gets a second copy filled with +inf
  that its false-tracking nodes read. Shipping it would need that fill in the graph's front.
* `4 forests, summed`: the trees cut into four `TreeEnsemble` nodes of consecutive trees, their
  outputs added by a `Sum`. onnxruntime walks a big batch tree by tree over all its rows; one
  forest is about 900 kB of nodes, a quarter of it fits a core's L2 cache. The sum's order
  differs from one forest's, so its output may differ in the last float32 bit.

One row and small batches walk different rows call after call: the same rows timed again
find the branch predictor trained on their walk and read too fast (one row 2.6–3.5×, 16-row
batches 3.6–3.8× in the two distinct-rows runs, against `results/layout-2026-12-07.md`), so
"one row" is 3,000 different rows each once, and a batch size in "Row order" is consecutive
batches each once per pass. The
1,000-row and whole-split columns still repeat their rows: a thousand rows' walks are far more
than the predictor holds.

"Row order" prices the same held-out cars as they come and grouped by the fields the server
groups a long run by (`inference.model.pricing_order`: brand, model, year of manufacture), each
batch sorted on its own: the forest alone, lleaves and LightGBM (the simplest baselines get
the same trick), sorted by those fields' integer codes, and `LoadedModel.run` on the served
bundle with its grouping switched off and on (sorting by the strings included, at every size:
below `ORDERED_RUN` the server never sorts, so those columns show what a sort would cost). A
grouped run's prices must equal the same run's as the cars come (checked, reported).

The hit counts come from the training split, the timings from the test split. It also reports
what bounds a different tree shape: the node visits per row, the sum over trees of the
deepest leaf, and the entropy of each tree's leaves (a lower bound on visits for any binary
tree with the same leaf masses). Run pinned to one core after `make train`:

    taskset -c 1 uv run --frozen python -m studies.forest_representation.layout

It writes `results/layout-<date>.{md,json}`. Timings are medians; the variants take turns over
the rounds; the cold call sleeps 20 ms before each of 60 different cars.
"""

import argparse
import json
import os
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import onnx
from benchmarks.champion import Champion, car_dicts, held_out_rows
from onnx import TensorProto, helper, numpy_helper

from shared_schema import Car
from shared_schema.feeds import feeds_from_cars

RESULTS = Path(__file__).parent / "results"
_FEATURES = "features"
_COLD_CARS = 60
_COLD_GAP_S = 0.02
_GT_MODE = 3
_ONE_ROWS = 3_000
#: Passes over a size's batches; the figure is their median.
_PASSES = 4


def _forest(graph: onnx.ModelProto) -> onnx.NodeProto:
    """The graph's price forest (not the interval's two-tree `TreeEnsemble`)."""
    return next(n for n in graph.graph.node if n.op_type == "TreeEnsemble" and "trees" in n.name)


def forest_matrix(graph: onnx.ModelProto, frame: Any) -> np.ndarray:
    """The forest's input matrix for `frame`'s rows, as the graph's own front computes it."""
    import onnxruntime as ort

    from inference.model import session_options
    from training.io import onnx_graph

    probe = onnx.ModelProto()
    probe.CopyFrom(graph)
    probe.graph.output.append(helper.make_tensor_value_info(_FEATURES, TensorProto.FLOAT, None))
    session = ort.InferenceSession(
        probe.SerializeToString(),
        sess_options=session_options(1),
        providers=["CPUExecutionProvider"],
    )
    cars = msgspec.convert(car_dicts(frame), list[Car])
    feeds = feeds_from_cars(cars, onnx_graph.input_spec(graph))
    return np.ascontiguousarray(session.run([_FEATURES], feeds)[0])


def child_hits(attributes: dict[str, Any], matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per node, how many rows of `matrix` go to its true child and to its false child."""
    feature = np.asarray(attributes["nodes_featureids"])
    split = numpy_helper.to_array(attributes["nodes_splits"]).astype(np.float32)
    track = np.asarray(attributes["nodes_missing_value_tracks_true"])
    child = {side: np.asarray(attributes[f"nodes_{side}nodeids"]) for side in ("true", "false")}
    leaf = {side: np.asarray(attributes[f"nodes_{side}leafs"]) for side in ("true", "false")}
    hits_true = np.zeros(len(feature))
    hits_false = np.zeros(len(feature))
    for root in attributes["tree_roots"]:
        at = np.full(len(matrix), root)
        walking = np.arange(len(matrix))
        while len(walking):
            node = at[walking]
            value = matrix[walking, feature[node]]
            true = (value <= split[node]) | (np.isnan(value) & (track[node] == 1))
            np.add.at(hits_true, node[true], 1)
            np.add.at(hits_false, node[~true], 1)
            at[walking] = np.where(true, child["true"][node], child["false"][node])
            done = np.where(true, leaf["true"][node], leaf["false"][node]) == 1
            walking = walking[~done]
    return hits_true, hits_false


def turned(forest: onnx.NodeProto, turn: np.ndarray, width: int, *, via: str) -> onnx.NodeProto:
    """`forest` with each node in `turn` testing the opposite way, its children swapped.

    `via="negated"` reads column `width + c` (holding `-column c`) against `-nextafter(t)`;
    `via="gt"` keeps the column and makes the node `BRANCH_GT`.
    """
    from training.io.tree_ensemble import node_attributes, with_attributes

    attributes = node_attributes(forest)
    feature = np.asarray(attributes["nodes_featureids"])
    split = numpy_helper.to_array(attributes["nodes_splits"]).astype(np.float32)
    swapped: dict[str, Any] = {}
    for name in ("nodeids", "leafs"):
        true, false = (np.asarray(attributes[f"nodes_{side}{name}"]) for side in ("true", "false"))
        swapped[f"nodes_true{name}"] = np.where(turn, false, true).tolist()
        swapped[f"nodes_false{name}"] = np.where(turn, true, false).tolist()
    track = np.asarray(attributes["nodes_missing_value_tracks_true"])
    swapped["nodes_missing_value_tracks_true"] = np.where(turn, 1 - track, track).tolist()
    if via == "negated":
        above = -np.nextafter(split, np.float32(np.inf))
        swapped["nodes_featureids"] = np.where(turn, feature + width, feature).tolist()
        swapped["nodes_splits"] = numpy_helper.from_array(np.where(turn, above, split))
    else:
        modes = numpy_helper.to_array(attributes["nodes_modes"])
        swapped["nodes_modes"] = numpy_helper.from_array(
            np.where(turn, _GT_MODE, modes).astype(np.uint8)
        )
    return with_attributes(forest, **swapped)


def untracked(forest: onnx.NodeProto, matrix: np.ndarray) -> tuple[onnx.NodeProto, np.ndarray]:
    """`forest` with no node tracking NaN, and `matrix` with each NaN filled where it went.

    A NaN goes to the true child of a `x <= t` node exactly when it is filled with −inf, to the
    false child when filled with +inf, unless t is +inf (LightGBM's "missing or not" split, 1e300
    in float32): such a node sending NaN false is refused, as is any mode but `BRANCH_LEQ`. A
    column some of whose nodes send NaN each way is appended again, filled with +inf, for the
    nodes sending it false.

    Raises:
        ValueError: A node the fill cannot express (named).
    """
    from training.io.tree_ensemble import node_attributes, with_attributes

    attributes = node_attributes(forest)
    feature = np.asarray(attributes["nodes_featureids"])
    track = np.asarray(attributes["nodes_missing_value_tracks_true"])
    modes = numpy_helper.to_array(attributes["nodes_modes"])
    split = numpy_helper.to_array(attributes["nodes_splits"])
    missing = np.isnan(matrix)
    can_be_nan = missing.any(axis=0)
    for node in np.flatnonzero((modes != 0) | ((track == 0) & np.isposinf(split))):
        if modes[node] != 0 or can_be_nan[feature[node]]:
            raise ValueError(
                f"node {node} (column {feature[node]}, mode {modes[node]}, split {split[node]}, "
                f"NaN to the {'true' if track[node] else 'false'} child): no fill expresses it"
            )
    width = matrix.shape[1]
    tracked_true = np.bincount(feature[track == 1], minlength=width) > 0
    tracked_false = np.bincount(feature[track == 0], minlength=width) > 0
    both = np.flatnonzero(tracked_true & tracked_false)
    fill = np.where(tracked_true, -np.inf, np.inf).astype(matrix.dtype)
    filled = np.where(missing, fill, matrix)
    extra = np.where(missing[:, both], np.inf, matrix[:, both]).astype(matrix.dtype)
    copy_of = np.full(width, -1)
    copy_of[both] = width + np.arange(len(both))
    moved = np.where((track == 0) & (copy_of[feature] >= 0), copy_of[feature], feature)
    untracked_forest = with_attributes(
        forest,
        nodes_featureids=moved.tolist(),
        nodes_missing_value_tracks_true=[0] * len(track),
    )
    return untracked_forest, np.ascontiguousarray(np.hstack([filled, extra]))


def in_parts(forest: onnx.NodeProto, parts: int) -> list[onnx.NodeProto]:
    """`forest` cut into `parts` forests of consecutive trees, then a `Sum` into its output.

    Raises:
        ValueError: A forest the cut would change: a node not `BRANCH_LEQ` (a member node's
            set would not follow it), or an aggregate other than a plain sum.
    """
    from training.io.tree_ensemble import node_attributes, tree_of

    attributes = node_attributes(forest)
    modes = numpy_helper.to_array(attributes["nodes_modes"])
    if (modes != 0).any():
        node = int(np.flatnonzero(modes != 0)[0])
        raise ValueError(f"node {node} has mode {modes[node]}: only BRANCH_LEQ forests are cut")
    if attributes.get("aggregate_function", 1) != 1 or attributes.get("post_transform", 0) != 0:
        raise ValueError("only a forest that sums its trees with no post transform is cut")
    roots = attributes["tree_roots"]
    per_node = [name for name in attributes if name.startswith("nodes_")]
    tree_of_node = tree_of(attributes)
    nodes: list[onnx.NodeProto] = []
    for part, trees in enumerate(np.array_split(np.arange(len(roots)), parts)):
        wanted = set(trees.tolist())
        kept = [node for node in range(len(modes)) if tree_of_node[node] in wanted]
        renamed = {(False, node): index for index, node in enumerate(kept)}
        leaves: list[int] = []  # the part's leaves, in the order its nodes meet them
        for node in kept:
            for side in ("false", "true"):
                if attributes[f"nodes_{side}leafs"][node]:
                    renamed[True, attributes[f"nodes_{side}nodeids"][node]] = len(leaves)
                    leaves.append(attributes[f"nodes_{side}nodeids"][node])
        fields: dict[str, Any] = {
            name: value
            for name, value in attributes.items()
            if not name.startswith(("nodes_", "leaf_"))
        }
        for name in per_node:
            value = attributes[name]
            if isinstance(value, onnx.TensorProto):
                fields[name] = numpy_helper.from_array(numpy_helper.to_array(value)[kept])
            else:
                fields[name] = [value[node] for node in kept]
        for side in ("true", "false"):
            fields[f"nodes_{side}nodeids"] = [
                renamed[
                    bool(attributes[f"nodes_{side}leafs"][node]),
                    attributes[f"nodes_{side}nodeids"][node],
                ]
                for node in kept
            ]
        fields["leaf_targetids"] = [attributes["leaf_targetids"][leaf] for leaf in leaves]
        weights = numpy_helper.to_array(attributes["leaf_weights"])
        fields["leaf_weights"] = numpy_helper.from_array(weights[leaves])
        fields["tree_roots"] = [renamed[False, roots[tree]] for tree in trees]
        nodes.append(
            helper.make_node(
                forest.op_type,
                list(forest.input),
                [f"{forest.output[0]}_part{part}"],
                name=f"{forest.name}_part{part}",
                domain=forest.domain,
                **fields,
            )
        )
    nodes.append(helper.make_node("Sum", [n.output[0] for n in nodes], list(forest.output)))
    return nodes


def _session(forest: onnx.NodeProto | list[onnx.NodeProto]) -> Any:
    """A session of `forest` alone (or of its parts and their sum, the last node)."""
    import onnxruntime as ort

    from inference.model import session_options

    nodes = forest if isinstance(forest, list) else [forest]
    graph = helper.make_graph(
        nodes,
        "forest",
        [helper.make_tensor_value_info(_FEATURES, TensorProto.FLOAT, [None, None])],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, [None, 1])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 5)]
    )
    return ort.InferenceSession(
        model.SerializeToString(),
        sess_options=session_options(1),
        providers=["CPUExecutionProvider"],
    )


def _per_row_us(run: Callable[[np.ndarray], object], matrix: np.ndarray, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(matrix)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / len(matrix) * 1e6


def _lone_rows_us(
    run: Callable[[np.ndarray], object], matrix: np.ndarray, calls: int, gap_s: float = 0.0
) -> float:
    """Median µs of one row, each call the next row of `matrix` (cycled), `gap_s` idle before."""
    times = []
    for index in range(calls):
        row = index % len(matrix)
        one = matrix[row : row + 1]
        if gap_s:
            time.sleep(gap_s)
        start = time.perf_counter()
        run(one)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def shape_bounds(champion: Champion) -> dict[str, float]:
    """Visits per row if every tree were reshaped: leaf-mass entropy, deepest leaves, as is."""
    expected = entropy = deepest = 0.0
    for tree in champion.pipeline.booster.dump_model()["tree_info"]:
        leaves: list[tuple[int, int]] = []
        stack = [(tree["tree_structure"], 0)]
        while stack:
            node, depth = stack.pop()
            if "leaf_index" in node:
                leaves.append((node["leaf_count"], depth))
            else:
                stack += [(node["left_child"], depth + 1), (node["right_child"], depth + 1)]
        counts = np.array([count for count, _ in leaves], dtype=np.float64)
        depths = np.array([depth for _, depth in leaves], dtype=np.float64)
        mass = counts / counts.sum()
        expected += float(mass @ depths)
        entropy += float(-(mass[mass > 0] * np.log2(mass[mass > 0])).sum())
        deepest += float(depths.max())
    return {"training_visits": expected, "entropy_bound": entropy, "deepest_leaves": deepest}


def measure(pipeline_dir: Path, splits: Path, rounds: int) -> dict[str, Any]:
    """Every variant's µs at each size, hot and cold, with its largest price difference."""
    import onnxruntime as ort

    from training.io import onnx_graph

    champion = Champion(Path("unused"), pipeline_dir)
    graph = onnx_graph.build_graph(champion.pipeline)
    forest = _forest(graph)
    from training.io.tree_ensemble import node_attributes

    attributes = node_attributes(forest)
    counted = forest_matrix(graph, held_out_rows(splits / "train.parquet"))
    timed = forest_matrix(graph, held_out_rows(splits / "test.parquet"))
    hits_true, hits_false = child_hits(attributes, counted)
    width = timed.shape[1]
    negated = np.ascontiguousarray(np.hstack([timed, -timed]))
    padded = np.ascontiguousarray(np.hstack([timed, np.zeros_like(timed)]))
    variants: dict[str, tuple[onnx.NodeProto | list[onnx.NodeProto], np.ndarray]] = {
        "as exported": (forest, timed),
        "padded": (forest, padded),
        "hot false": (turned(forest, hits_true > hits_false, width, via="negated"), negated),
        "hot true": (turned(forest, hits_false > hits_true, width, via="negated"), negated),
        "hot false, GT": (turned(forest, hits_true > hits_false, width, via="gt"), timed),
        "no NaN tracks": untracked(forest, timed),
        "4 forests, summed": (in_parts(forest, 4), timed),
    }
    results: dict[str, Any] = {
        "onnxruntime": ort.__version__,
        "counted_rows": len(counted),
        "timed_rows": len(timed),
        "width": width,
        "visits_per_row": float((hits_true + hits_false).sum() / len(counted)),
        "turned_nodes": int((hits_true > hits_false).sum()),
        "tracking_nodes": int(np.sum(attributes["nodes_missing_value_tracks_true"])),
        "nan_columns": int(np.isnan(timed).any(axis=0).sum()),
        "nodes": len(hits_true),
        **shape_bounds(champion),
        "load_before": os.getloadavg(),
        "runs": {},
    }
    sessions = {name: _session(node) for name, (node, _) in variants.items()}
    reference = sessions["as exported"].run(None, {_FEATURES: timed})[0]
    for name, (_, matrix) in variants.items():
        got = sessions[name].run(None, {_FEATURES: matrix})[0]
        results["runs"][name] = {"max_abs_diff": float(np.abs(got - reference).max())}
    for round_ in range(rounds):
        order = list(variants)[round_ % len(variants) :] + list(variants)[: round_ % len(variants)]
        for name in order:
            matrix = variants[name][1]
            session = sessions[name]

            def run(rows: np.ndarray, session: Any = session) -> object:
                return session.run(None, {_FEATURES: rows})

            entry = results["runs"][name]
            for size, repeats in ((len(matrix), 9), (1000, 25)):
                label = "all" if size == len(matrix) else str(size)
                entry.setdefault(label, []).append(
                    _per_row_us(run, np.ascontiguousarray(matrix[:size]), repeats)
                )
            entry.setdefault("1", []).append(_lone_rows_us(run, matrix, _ONE_ROWS))
            cold = matrix[round_ * _COLD_CARS :]
            lone = min(_COLD_CARS, len(cold))
            entry.setdefault("cold", []).append(_lone_rows_us(run, cold, lone, _COLD_GAP_S))
    results["load_after"] = os.getloadavg()
    return results


_ORDER_SIZES = (16, 64, 128, 256, 1000)
#: Rows the batch sizes are timed over (the test split's first ones; a larger batch: one).
_ORDER_ROWS = 7_000


def _grouped(matrix: np.ndarray, keys: list[int]) -> np.ndarray:
    """Row indices of `matrix` sorted by its columns `keys` (the first key sorts first)."""
    return np.lexsort([matrix[:, key] for key in reversed(keys)])


def _batches_us(
    run: Callable[[np.ndarray], object], matrix: np.ndarray, size: int, keys: list[int] | None
) -> float:
    """µs/row over consecutive `size`-row batches, each sorted by `keys` (None: as is).

    Each batch is timed once per pass; the figure is the median over `_PASSES` passes of a
    pass's time per row.
    """
    batches = []
    for start in _starts(len(matrix), size):
        batch = matrix[start : start + size]
        if keys is not None:
            batch = batch[_grouped(batch, keys)]
        batches.append(np.ascontiguousarray(batch))
    rows = sum(len(batch) for batch in batches)
    passes = []
    for _ in range(_PASSES):
        total = 0.0
        for batch in batches:
            begin = time.perf_counter()
            run(batch)
            total += time.perf_counter() - begin
        passes.append(total / rows * 1e6)
    return float(np.median(passes))


def _starts(rows: int, size: int) -> range:
    """The first row of each batch timed: consecutive batches over `_ORDER_ROWS` rows at most."""
    return range(0, max(min(rows, _ORDER_ROWS), size) - size + 1, size)


def row_order(pipeline_dir: Path, splits: Path, bundle: Path) -> dict[str, Any]:
    """µs/row as the cars come and grouped, for the forest, lleaves, LightGBM and the server."""
    from unittest import mock

    from benchmarks.model_bench import compile_lleaves

    import inference.model as served
    from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES
    from training.io import onnx_graph

    champion = Champion(Path("unused"), pipeline_dir)
    frame = held_out_rows(splits / "test.parquet")
    graph = onnx_graph.build_graph(champion.pipeline)
    forest = _forest(graph)
    matrix = forest_matrix(graph, frame)
    # The forest's matrix: the numeric fields first, then each categorical field's code and
    # its lookup columns (`graph_front.Layout`); the codes' columns are found by their tables.
    numeric = [name for name in FIELD_NAMES if name not in CATEGORICAL_FIELDS]
    column, code_column = len(numeric), {}
    for name in CATEGORICAL_FIELDS:
        code_column[name] = column
        table = next(t for t in graph.graph.initializer if t.name == f"{name}__rows")
        column += int(table.dims[1])
    forest_keys = [
        code_column["brand"],
        code_column["model_name"],
        numeric.index("production_year"),
    ]
    encoded = champion.encode(frame)
    booster_keys = [FIELD_NAMES.index(n) for n in ("brand", "model_name", "production_year")]
    lleaves, _ = compile_lleaves(champion.booster_file, Path("data/bench/lleaves"))
    session = _session(forest)
    runtimes: dict[str, tuple[Callable[[np.ndarray], object], np.ndarray, list[int]]] = {
        "forest alone": (
            lambda rows: session.run(None, {_FEATURES: rows}),
            matrix,
            forest_keys,
        ),
        "lleaves": (lambda rows: lleaves.predict(rows, n_jobs=1), encoded, booster_keys),
        "LightGBM": (
            lambda rows: champion.pipeline.booster.predict(rows, num_threads=1),
            encoded,
            booster_keys,
        ),
    }
    results: dict[str, Any] = {"rows": len(frame), "runs": {}}
    for name, (run, rows, keys) in runtimes.items():
        results["runs"][name] = {
            str(size): [_batches_us(run, rows, size, None), _batches_us(run, rows, size, keys)]
            for size in (*_ORDER_SIZES, len(rows))
        }
    model = served.load_bundle(bundle)
    cars = msgspec.convert(car_dicts(frame), list[Car])

    def priced(size: int) -> list[float]:
        """µs/row as the cars come and grouped, the two taking turns pass by pass."""
        batches = [cars[start : start + size] for start in _starts(len(cars), size)]
        rows = sum(len(batch) for batch in batches)
        passes: list[list[float]] = [[], []]
        turns = ((0, len(cars) + 1), (1, 1))  # (grouped, ORDERED_RUN): never, always
        for pass_ in range(_PASSES):  # every batch one way, then every batch the other
            for grouped, bound in turns[::-1] if pass_ % 2 else turns:
                total = 0.0
                with mock.patch.object(served, "ORDERED_RUN", bound):
                    for batch in batches:
                        begin = time.perf_counter()
                        model.run(batch)
                        total += time.perf_counter() - begin
                passes[grouped].append(total / rows * 1e6)
        return [float(np.median(passes[0])), float(np.median(passes[1]))]

    entry = {str(size): priced(size) for size in (*_ORDER_SIZES, len(cars))}
    with mock.patch.object(served, "ORDERED_RUN", len(cars) + 1):
        as_is = np.asarray(model.predict(cars))
    with mock.patch.object(served, "ORDERED_RUN", 1):
        grouped = np.asarray(model.predict(cars))
    results["server_max_price_diff"] = float(np.abs(grouped - as_is).max())
    results["runs"][f"LoadedModel.run ({bundle})"] = entry
    return results


def order_table(results: dict[str, Any]) -> str:
    """µs/row as is → grouped (and the ratio) per runtime and batch size."""
    sizes = list(next(iter(results["runs"].values())))
    lines = [
        "| runtime | " + " | ".join(f"{int(size):,} rows" for size in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for name, entry in results["runs"].items():
        cells = [
            f"{as_is:.2f} → {grouped:.2f} ({grouped / as_is:.2f}×)"
            for as_is, grouped in (entry[size] for size in sizes)
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(results: dict[str, Any]) -> str:
    """The Markdown table: medians over rounds, and each variant over `as exported`."""
    base = results["runs"]["as exported"]
    lines = [
        f"| variant | max price diff | µs/row at {results['timed_rows']:,} | at 1,000 | one row "
        "| cold one row | vs as exported (all / 1,000 / 1 / cold) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, entry in results["runs"].items():
        medians = [float(np.median(entry[key])) for key in ("all", "1000", "1", "cold")]
        ratios = [
            m / float(np.median(base[key]))
            for m, key in zip(medians, ("all", "1000", "1", "cold"), strict=True)
        ]
        lines.append(
            f"| {name} | {entry['max_abs_diff']:.1e} | {medians[0]:.2f} | {medians[1]:.2f} | "
            f"{medians[2]:.2f} | {medians[3]:.0f} | "
            + " / ".join(f"{ratio:.2f}" for ratio in ratios)
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure, print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, default=Path("data/train"))
    parser.add_argument("--splits", type=Path, default=Path("data/splits"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bundle", type=Path, default=Path("data/model"))
    parser.add_argument("--out", type=Path, default=RESULTS / f"layout-{date.today()}")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    results = measure(args.pipeline, args.splits, args.rounds)
    results["row_order"] = row_order(args.pipeline, args.splits, args.bundle)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    load = ", ".join(f"{value:.2f}" for value in [*results["load_before"], *results["load_after"]])
    text = (
        f"{args.pipeline}: onnxruntime {results['onnxruntime']}, forest alone on its input matrix "
        f"({results['width']} columns), {args.rounds} rounds, {os.cpu_count()} CPUs, "
        f"load average before / after: {load}\n\n"
        f"Node visits per row {results['visits_per_row']:.0f} (training rows); the same from "
        f"LightGBM's leaf counts {results['training_visits']:.0f}; sum of each tree's deepest "
        f"leaf {results['deepest_leaves']:.0f}; leaf-mass entropy bound "
        f"{results['entropy_bound']:.0f}. Turned round: {results['turned_nodes']:,} of "
        f"{results['nodes']:,} nodes. Nodes tracking NaN as exported: "
        f"{results['tracking_nodes']:,}; test columns with a NaN: {results['nan_columns']}.\n\n"
        + table(results)
        + "\n\n"
        "## Row order\n\n"
        f"µs per row, the {results['row_order']['rows']:,} held-out rows as they come → each "
        "batch grouped by brand, model and year of manufacture (the sort included for "
        "`LoadedModel.run`, whose grouping `inference.model.ORDERED_RUN` switches; the "
        "last column is all rows in one batch). Prices of all rows grouped vs as they come, "
        "through `LoadedModel.run`: largest difference "
        f"{results['row_order']['server_max_price_diff']:.1e} RUB.\n\n"
        + order_table(results["row_order"])
        + "\n"
    )
    args.out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
