"""The price and its interval's bounds from the log price in six nodes, for the one-car call.

`training.core.intervals.IntervalTable.bounds`: bin = number of edges the market-relative log
price exceeds; bound = exp(log price + offset[bin]), so both bounds scale with the market level
like the price; then Min/Max with the price, so `price_lower <= price <= price_upper` holds on
every row whatever the offsets.

The bin's two offsets are read by one small `ai.onnx.ml.TreeEnsemble` on the relative log
price: a balanced tree over the edges per bound, its leaves the bins' offsets, and a third
output column that is always 0 for the price itself. Then one Add, one Exp and one Split give
the price and both raw bounds together. The same float32 comparisons and additions as the
eleven-node form it replaces (Greater, Cast, ReduceSum, then Gather, Add, Exp and a clamp per
bound); onnxruntime's per-node cost is most of the one-car call (issue 21).
"""

import itertools
from typing import Final

import numpy as np
import onnx
from onnx import helper, numpy_helper

from shared_schema.bundle import LOWER_OUTPUT, PRICE_OUTPUT, UPPER_OUTPUT
from training.core.intervals import IntervalTable

_LEQ: Final = 0
#: The TreeEnsemble's output columns: price (offset 0), lower bound, upper bound.
_TARGETS: Final = 3


class _Trees:
    """A TreeEnsemble's node and leaf arrays, one balanced tree per bound."""

    def __init__(self) -> None:
        self.nodes: dict[str, list[float]] = {
            name: [] for name in ("splits", "true", "true_leaf", "false", "false_leaf")
        }
        self.leaf_targets: list[int] = []
        self.leaf_weights: list[float] = []
        self.roots: list[int] = []

    def leaf(self, target: int, weight: float) -> tuple[int, int]:
        """A new leaf adding `weight` to output column `target`: (index, is_leaf)."""
        self.leaf_targets.append(target)
        self.leaf_weights.append(weight)
        return len(self.leaf_weights) - 1, 1

    def branch(self, split: float, true: tuple[int, int], false: tuple[int, int]) -> int:
        """A new node: a value at most `split` goes to `true`, any other to `false`."""
        row = {"splits": split, "true": true[0], "true_leaf": true[1]}
        row |= {"false": false[0], "false_leaf": false[1]}
        for name, value in row.items():
            self.nodes[name].append(value)
        return len(self.nodes["splits"]) - 1

    def bins(
        self, edges: list[float], offsets: list[float], target: int, low: int, high: int
    ) -> tuple[int, int]:
        """Bins `low..high` (number of edges exceeded) as a subtree: (index, is_leaf)."""
        if low == high:
            return self.leaf(target, offsets[low])
        middle = (low + high) // 2
        # value <= edges[middle]: at most `middle` edges exceeded (edges ascend).
        true = self.bins(edges, offsets, target, low, middle)
        false = self.bins(edges, offsets, target, middle + 1, high)
        return self.branch(edges[middle], true, false), 0


def interval_nodes(
    table: IntervalTable, relative: str, log_price: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes from `relative` and `log_price` ([N, 1] float32) to the price and both bounds.

    Raises:
        ValueError: The table's edges do not ascend strictly, or its offsets are not one per bin.
    """
    edges = [float(edge) for edge in table.edges]
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise ValueError(f"interval edges must ascend strictly: {edges}")
    for bound, offsets in (("lower", table.lower), ("upper", table.upper)):
        if len(offsets) != len(edges) + 1:
            raise ValueError(f"{len(offsets)} {bound} offsets for {len(edges) + 1} bins")
    trees = _Trees()
    for target, side in ((1, table.lower), (2, table.upper)):
        root = trees.bins(edges, [float(offset) for offset in side], target, 0, len(edges))
        if root[1]:  # one bin: a node that always goes to its one leaf
            root = trees.branch(float("inf"), root, root), 0
        trees.roots.append(root[0])
    nodes = trees.nodes
    forest = helper.make_node(
        "TreeEnsemble",
        [relative],
        ["interval_offsets"],
        name="interval_bins",
        domain="ai.onnx.ml",
        aggregate_function=1,
        post_transform=0,
        n_targets=_TARGETS,
        tree_roots=trees.roots,
        nodes_modes=numpy_helper.from_array(np.full(len(nodes["splits"]), _LEQ, dtype=np.uint8)),
        nodes_featureids=[0] * len(nodes["splits"]),
        nodes_splits=numpy_helper.from_array(np.asarray(nodes["splits"], dtype=np.float32)),
        nodes_truenodeids=[int(i) for i in nodes["true"]],
        nodes_trueleafs=[int(i) for i in nodes["true_leaf"]],
        nodes_falsenodeids=[int(i) for i in nodes["false"]],
        nodes_falseleafs=[int(i) for i in nodes["false_leaf"]],
        leaf_targetids=trees.leaf_targets,
        leaf_weights=numpy_helper.from_array(np.asarray(trees.leaf_weights, dtype=np.float32)),
    )
    return [
        forest,
        helper.make_node("Add", [log_price, "interval_offsets"], ["interval_log_prices"]),
        helper.make_node("Exp", ["interval_log_prices"], ["interval_prices"], name="to_rub"),
        helper.make_node(
            "Split", ["interval_prices"], [PRICE_OUTPUT, "lower_raw", "upper_raw"], axis=1
        ),
        helper.make_node("Min", ["lower_raw", PRICE_OUTPUT], [LOWER_OUTPUT]),
        helper.make_node("Max", ["upper_raw", PRICE_OUTPUT], [UPPER_OUTPUT]),
    ], []
