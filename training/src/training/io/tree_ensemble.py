"""LightGBM's categorical splits as set-membership nodes: `TreeEnsemble` (ai.onnx.ml 5).

onnxmltools exports each categorical split of a LightGBM tree ("code in {c1, …, ck}") as a
chain of k `BRANCH_EQ` nodes of `TreeEnsembleRegressor` (ai.onnx.ml 1/3), all true branches to
one node. A row walks the chain one comparison at a time, so a forest rich in categorical
splits (model_name has about a thousand values) is many times larger and deeper than its
booster. `ai.onnx.ml.TreeEnsemble` (in onnxruntime since 1.20) has a `BRANCH_MEMBER` mode that
tests the whole set in one node. The rewrite keeps every threshold and leaf value, so prices do
not change (the export's parity check holds the result to the LightGBM pipeline). The export
logs the node counts before and after; the effect on latency and memory is measured by the
benchmarks (`benchmarks/results/`).
"""

import operator
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import onnx
from onnx import helper, numpy_helper

# TreeEnsemble (ai.onnx.ml 5) node modes.
_MODES: Final = {
    "BRANCH_LEQ": 0,
    "BRANCH_LT": 1,
    "BRANCH_GTE": 2,
    "BRANCH_GT": 3,
    "BRANCH_EQ": 4,
    "BRANCH_NEQ": 5,
}
MEMBER_MODE: Final = 6
#: What each comparison mode tests: `COMPARISONS[mode](value, threshold)` is the true branch
#: (for a float, or elementwise for a numpy array of values).
COMPARISONS: Final = {
    0: operator.le,
    1: operator.lt,
    2: operator.ge,
    3: operator.gt,
    4: operator.eq,
    5: operator.ne,
}
_ML_OPSET: Final = 5


class _Forest:
    """The old operator's flat arrays, indexed by (tree id, node id)."""

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.attributes = attributes
        keys = zip(attributes["nodes_treeids"], attributes["nodes_nodeids"], strict=True)
        self.index = {key: position for position, key in enumerate(keys)}
        self.modes = [mode.decode() for mode in attributes["nodes_modes"]]
        self.weights: dict[tuple[int, int], float] = {}
        for tree, node, weight in zip(
            attributes["target_treeids"],
            attributes["target_nodeids"],
            attributes["target_weights"],
            strict=True,
        ):
            self.weights[(tree, node)] = self.weights.get((tree, node), 0.0) + weight

    def field(self, name: str, position: int) -> Any:
        return self.attributes[name][position]


class _Builder:
    """Accumulates the new operator's arrays while walking each tree once."""

    def __init__(self, forest: _Forest) -> None:
        self.forest = forest
        self.nodes: dict[str, list[Any]] = {
            key: []
            for key in (
                "modes",
                "features",
                "splits",
                "true",
                "true_leaf",
                "false",
                "false_leaf",
                "missing_true",
            )
        }
        self.members: list[float] = []
        self.leaf_weights: list[float] = []
        self.memo: dict[tuple[int, int], tuple[int, int]] = {}

    def target(self, tree: int, node: int) -> tuple[int, int]:
        """(index, is_leaf) of the old node in the new arrays, building it if new."""
        key = (tree, node)
        if key in self.memo:
            return self.memo[key]
        position = self.forest.index[key]
        mode = self.forest.modes[position]
        if mode == "LEAF":
            self.leaf_weights.append(self.forest.weights.get(key, 0.0))
            self.memo[key] = (len(self.leaf_weights) - 1, 1)
            return self.memo[key]
        index = len(self.nodes["modes"])
        for values in self.nodes.values():
            values.append(None)
        self.memo[key] = (index, 0)
        feature = self.forest.field("nodes_featureids", position)
        true_id = self.forest.field("nodes_truenodeids", position)
        last = position
        new_mode, split = _MODES[mode], float(self.forest.field("nodes_values", position))
        if mode == "BRANCH_EQ":
            members = [split]
            # Follow the false edges while they continue the same set test.
            while True:
                next_id = self.forest.field("nodes_falsenodeids", last)
                following = self.forest.index[(tree, next_id)]
                if (
                    self.forest.modes[following] != "BRANCH_EQ"
                    or self.forest.field("nodes_featureids", following) != feature
                    or self.forest.field("nodes_truenodeids", following) != true_id
                ):
                    break
                members.append(float(self.forest.field("nodes_values", following)))
                last = following
            if len(members) > 1:
                new_mode, split = MEMBER_MODE, 0.0
                self.members += [*members, float("nan")]
        false_id = self.forest.field("nodes_falsenodeids", last)
        missing = self.forest.field("nodes_missing_value_tracks_true", position)
        true_index, true_leaf = self.target(tree, true_id)
        false_index, false_leaf = self.target(tree, false_id)
        row = {
            "modes": new_mode,
            "features": feature,
            "splits": split,
            "true": true_index,
            "true_leaf": true_leaf,
            "false": false_index,
            "false_leaf": false_leaf,
            "missing_true": missing,
        }
        for name, value in row.items():
            self.nodes[name][index] = value
        return self.memo[key]


def _rebuild(old: onnx.NodeProto, dtype: type) -> tuple[list[onnx.NodeProto], int, int]:
    attributes = node_attributes(old)
    if attributes.get("base_values") or attributes.get("n_targets", 1) != 1:
        raise ValueError("only single-target forests without base values are rewritten")
    forest = _Forest(attributes)
    builder = _Builder(forest)
    roots, leaves_as_roots = [], 0
    for tree in sorted(set(attributes["nodes_treeids"])):
        index, is_leaf = builder.target(tree, 0)
        if is_leaf:  # a tree that is one leaf: give it a node that always goes to it
            leaves_as_roots += 1
            for name, value in {
                "modes": 0,
                "features": 0,
                "splits": float("inf"),
                "true": index,
                "true_leaf": 1,
                "false": index,
                "false_leaf": 1,
                "missing_true": 1,
            }.items():
                builder.nodes[name].append(value)
            index = len(builder.nodes["modes"]) - 1
        roots.append(index)
    nodes = builder.nodes
    post = attributes.get("post_transform", b"NONE")
    post_transform = {b"NONE": 0, b"SOFTMAX": 1, b"LOGISTIC": 2, b"SOFTMAX_ZERO": 3}[post]
    # TreeEnsemble's attributes and output take its input's type (float64 in our export, for
    # exact thresholds); the old operator always output float32, so cast back to that.
    (output,) = old.output
    wide = dtype is np.float64
    new = helper.make_node(
        "TreeEnsemble",
        list(old.input),
        [f"{output}_float64" if wide else output],
        name=f"{old.name or 'forest'}_members",
        domain="ai.onnx.ml",
        aggregate_function=1,
        post_transform=post_transform,
        n_targets=1,
        tree_roots=roots,
        nodes_modes=numpy_helper.from_array(np.asarray(nodes["modes"], dtype=np.uint8)),
        nodes_featureids=nodes["features"],
        nodes_splits=numpy_helper.from_array(np.asarray(nodes["splits"], dtype=dtype)),
        nodes_truenodeids=nodes["true"],
        nodes_trueleafs=nodes["true_leaf"],
        nodes_falsenodeids=nodes["false"],
        nodes_falseleafs=nodes["false_leaf"],
        nodes_missing_value_tracks_true=nodes["missing_true"],
        membership_values=numpy_helper.from_array(np.asarray(builder.members, dtype=dtype)),
        leaf_targetids=[0] * len(builder.leaf_weights),
        leaf_weights=numpy_helper.from_array(np.asarray(builder.leaf_weights, dtype=dtype)),
    )
    added = [new]
    if wide:
        added.append(
            helper.make_node(
                "Cast",
                [f"{output}_float64"],
                [output],
                name=f"{old.name or 'forest'}_to_float",
                to=onnx.TensorProto.FLOAT,
            )
        )
    return added, len(forest.modes), len(nodes["modes"]) + len(builder.leaf_weights)


def collapse_categorical_chains(model_bytes: bytes) -> tuple[bytes, dict[str, int]]:
    """The graph with its `TreeEnsembleRegressor` rewritten as `TreeEnsemble` (ai.onnx.ml 5).

    Args:
        model_bytes: The exported ONNX model.

    Returns:
        The rewritten model and node counts before and after.
    """
    model = onnx.load_from_string(model_bytes)
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {
        info.name: info.type.tensor_type.elem_type
        for info in [*inferred.graph.value_info, *inferred.graph.input]
    }
    graph_nodes: list[onnx.NodeProto] = []
    counts: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type == "TreeEnsembleRegressor":
            wide = types.get(node.input[0]) == onnx.TensorProto.DOUBLE
            new, before, after = _rebuild(node, np.float64 if wide else np.float32)
            graph_nodes += new
            counts = {"nodes_before": before, "nodes_after": after}
        else:
            graph_nodes.append(node)
    if not counts:
        raise ValueError("the graph has no TreeEnsembleRegressor")
    del model.graph.node[:]
    model.graph.node.extend(graph_nodes)
    for opset in model.opset_import:
        if opset.domain == "ai.onnx.ml":
            opset.version = max(opset.version, _ML_OPSET)
    return model.SerializeToString(), counts


def node_attributes(forest: onnx.NodeProto) -> dict[str, Any]:
    """A `TreeEnsemble` node's attributes by name, as values (`with_attributes` reverses it)."""
    return {item.name: helper.get_attribute_value(item) for item in forest.attribute}


def with_attributes(forest: onnx.NodeProto, **changed: Any) -> onnx.NodeProto:
    """The same node (name, domain, inputs, outputs) with `changed` attributes replaced."""
    return helper.make_node(
        forest.op_type,
        list(forest.input),
        list(forest.output),
        name=forest.name,
        domain=forest.domain,
        **{**node_attributes(forest), **changed},
    )


def tree_of(attributes: Mapping[str, Any]) -> dict[int, int]:
    """The tree of every internal node (for naming a split)."""
    trees: dict[int, int] = {}
    for tree, root in enumerate(attributes["tree_roots"]):
        stack = [root]
        while stack:
            node = stack.pop()
            trees[node] = tree
            for side in ("true", "false"):
                if not attributes[f"nodes_{side}leafs"][node]:
                    stack.append(attributes[f"nodes_{side}nodeids"][node])
    return trees


def membership_tensor(sets: Mapping[int, list[float]], like: onnx.TensorProto) -> onnx.TensorProto:
    """`membership_values` holding each node's set, by node (`member_lists` reversed).

    In `like`'s element type: TreeEnsemble's sets take its input's type.
    """
    flat = [value for node in sorted(sets) for value in [*sets[node], float("nan")]]
    return numpy_helper.from_array(np.asarray(flat, dtype=numpy_helper.to_array(like).dtype))


def member_lists(attributes: Mapping[str, Any]) -> dict[int, list[float]]:
    """Each BRANCH_MEMBER node's values, by node (NaN-delimited in `membership_values`).

    Raises:
        ValueError: The number of sets is not the number of BRANCH_MEMBER nodes.
    """
    flat = numpy_helper.to_array(attributes["membership_values"]).tolist()
    member_nodes = np.flatnonzero(numpy_helper.to_array(attributes["nodes_modes"]) == MEMBER_MODE)
    ends = [index for index, value in enumerate(flat) if np.isnan(value)]
    if len(ends) != len(member_nodes):
        raise ValueError(
            f"{len(member_nodes)} BRANCH_MEMBER nodes but {len(ends)} sets in membership_values"
        )
    starts = [0, *(end + 1 for end in ends[:-1])] if ends else []
    return {
        int(node): flat[start:end]
        for node, start, end in zip(member_nodes, starts, ends, strict=True)
    }


def leaf_values(forest: onnx.NodeProto, row: np.ndarray) -> list[float]:
    """Each tree's leaf value for one row of a `TreeEnsemble`'s input, walked here in Python.

    The exporter's parity check uses it to name the tree where the graph and the booster part.

    Raises:
        ValueError: A node mode other than the comparisons and BRANCH_MEMBER.
    """
    attributes = node_attributes(forest)
    modes = numpy_helper.to_array(attributes["nodes_modes"])
    splits = numpy_helper.to_array(attributes["nodes_splits"])
    weights = numpy_helper.to_array(attributes["leaf_weights"])
    members = {node: set(values) for node, values in member_lists(attributes).items()}
    found = []
    for root in attributes["tree_roots"]:
        node, is_leaf = root, False
        while not is_leaf:
            value, mode = float(row[attributes["nodes_featureids"][node]]), int(modes[node])
            if np.isnan(value):
                goes_true = bool(attributes["nodes_missing_value_tracks_true"][node])
            elif mode == MEMBER_MODE:
                goes_true = value in members[node]
            elif mode in COMPARISONS:
                goes_true = COMPARISONS[mode](value, float(splits[node]))
            else:
                raise ValueError(f"node {node}: unknown node mode {mode}")
            side = "true" if goes_true else "false"
            node, is_leaf = (
                attributes[f"nodes_{side}nodeids"][node],
                bool(attributes[f"nodes_{side}leafs"][node]),
            )
        found.append(float(weights[node]))
    return found
