"""Categorical splits as thresholds on looked-up columns: same leaves for every code, one mode."""

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from training.core.model import PricePipeline
from training.io import onnx_graph, threshold_columns, tree_ensemble
from training.io.member_sets import ClassTable

from .forests import run_forest

CODES = 60
#: Feature 0 is categorical (codes 0..CODES-1), feature 1 numeric.
_MEMBER, _EQ, _LEQ = 6, 4, 0


def _forest(trees: int, depth: int, seed: int, bad_member: float | None = None) -> onnx.NodeProto:
    """Random full trees: set, equality and numeric splits, the same field split again below.

    Leaf weights are distinct, so a row's per-tree leaves say where it went.
    """
    rng = np.random.default_rng(seed)
    modes: list[int] = []
    features: list[int] = []
    splits: list[float] = []
    sets: list[list[float]] = []
    children: dict[str, list[int]] = {key: [] for key in ("tn", "tl", "fn", "fl")}
    roots: list[int] = []
    leaves = 0

    def grow(level: int) -> tuple[int, int]:
        nonlocal leaves
        if level == depth:
            leaves += 1
            return leaves - 1, 1
        node = len(modes)
        kind = rng.choice([_MEMBER, _EQ, _LEQ], p=[0.6, 0.15, 0.25])
        modes.append(int(kind))
        features.append(1 if kind == _LEQ else 0)
        splits.append(
            float(rng.normal())
            if kind == _LEQ
            else float(rng.integers(CODES))
            if kind == _EQ
            else 0
        )
        if kind == _MEMBER:
            members = rng.choice(CODES, size=int(rng.integers(2, CODES // 2)), replace=False)
            sets.append(sorted(float(v) for v in members))
        for column in children.values():
            column.append(0)
        for side in ("t", "f"):
            child, is_leaf = grow(level + 1)
            children[f"{side}n"][node], children[f"{side}l"][node] = child, is_leaf
        return node, 0

    for _ in range(trees):
        roots.append(grow(0)[0])
    if bad_member is not None:
        sets[0].append(bad_member)
    return helper.make_node(
        "TreeEnsemble",
        ["features"],
        ["score"],
        domain="ai.onnx.ml",
        aggregate_function=1,
        n_targets=1,
        post_transform=0,
        tree_roots=roots,
        nodes_modes=numpy_helper.from_array(np.asarray(modes, dtype=np.uint8)),
        nodes_featureids=features,
        nodes_splits=numpy_helper.from_array(np.asarray(splits)),
        nodes_truenodeids=children["tn"],
        nodes_trueleafs=children["tl"],
        nodes_falsenodeids=children["fn"],
        nodes_falseleafs=children["fl"],
        nodes_missing_value_tracks_true=[int(f == 1) for f in features],
        membership_values=numpy_helper.from_array(
            np.asarray([v for values in sets for v in [*values, float("nan")]])
        ),
        leaf_targetids=[0] * leaves,
        leaf_weights=numpy_helper.from_array(np.arange(1.0, leaves + 1.0)),
    )


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _rows(tables: list[ClassTable]) -> np.ndarray:
    """Every code beside numbers on both sides of 0 and NaN, threshold columns looked up."""
    codes, numbers = np.meshgrid(np.arange(CODES, dtype=np.float64), [-1.5, 0.0, 0.7, np.nan])
    rows = np.column_stack([codes.ravel(), numbers.ravel()])
    looked_up = [table.classes[rows[:, 0].astype(int)] for table in tables]
    return np.hstack([rows, *looked_up])


def _rewrite(old: onnx.NodeProto) -> tuple[onnx.NodeProto, Any]:
    return threshold_columns.to_threshold_columns(old, {0: CODES}, 2, ["model_name", "mileage"])


def test_every_code_reaches_the_same_leaf_in_every_tree() -> None:
    """Nested random splits: per-tree leaves equal for every code, number and NaN."""
    old = _forest(trees=6, depth=6, seed=1)
    new, rewrite = _rewrite(old)
    rows = _rows(rewrite.tables)
    for row in rows:
        before = tree_ensemble.leaf_values(old, row[:2])
        assert tree_ensemble.leaf_values(new, row) == before, row[:2]
    np.testing.assert_array_equal(run_forest(new, rows), run_forest(old, rows[:, :2].copy()))
    assert rewrite.fallbacks == []


def test_the_rewritten_forest_has_one_node_mode_and_shares_columns() -> None:
    """Every node a BRANCH_LEQ, no sets left; nested and unreachable codes let splits share."""
    old = _forest(trees=6, depth=6, seed=2)
    new, rewrite = _rewrite(old)
    attributes = _attributes(new)
    assert set(numpy_helper.to_array(attributes["nodes_modes"]).tolist()) == {_LEQ}
    assert numpy_helper.to_array(attributes["membership_values"]).size == 0
    categorical = sum(1 for f in _attributes(old)["nodes_featureids"] if f == 0)
    assert rewrite.rewritten == categorical
    assert 0 < rewrite.tables[0].classes.shape[1] < categorical


def test_a_member_past_the_fronts_codes_keeps_its_set_and_is_named() -> None:
    """A set with a code the front never produces stays a set, named; the rest still rewritten."""
    old = _forest(trees=2, depth=4, seed=3, bad_member=150.0)
    new, rewrite = _rewrite(old)
    (fallback,) = rewrite.fallbacks
    assert fallback.endswith("(model_name): a member outside the front's codes 0..59")
    modes = numpy_helper.to_array(_attributes(new)["nodes_modes"]).tolist()
    assert modes.count(_MEMBER) == 1
    rows = _rows(rewrite.tables)
    np.testing.assert_array_equal(run_forest(new, rows), run_forest(old, rows[:, :2].copy()))


def test_an_unknown_node_mode_is_refused_with_the_split_named() -> None:
    """A node mode TreeEnsemble does not define is an error naming its tree and node."""
    old = _forest(trees=2, depth=2, seed=4)
    attributes = _attributes(old)
    modes = numpy_helper.to_array(attributes["nodes_modes"]).copy()
    second_root = attributes["tree_roots"][1]
    modes[second_root] = 9
    broken = helper.make_node(
        old.op_type,
        list(old.input),
        list(old.output),
        domain=old.domain,
        **{**attributes, "nodes_modes": numpy_helper.from_array(modes)},
    )
    with pytest.raises(ValueError, match=f"tree 1 node {second_root}: unknown node mode 9"):
        _rewrite(broken)


def test_check_names_a_split_whose_column_sends_a_code_elsewhere() -> None:
    """A broken rank (one code moved across a root's threshold) fails, naming tree, node, code."""
    old = _forest(trees=1, depth=1, seed=5)
    attributes = _attributes(old)
    attributes["nodes_modes"] = numpy_helper.from_array(np.asarray([_MEMBER], dtype=np.uint8))
    attributes["nodes_featureids"] = [0]
    attributes["membership_values"] = numpy_helper.from_array(np.asarray([3.0, 4.0, np.nan]))
    single = helper.make_node(
        old.op_type, list(old.input), list(old.output), domain=old.domain, **attributes
    )
    new, rewrite = _rewrite(single)
    broken = rewrite.tables[0].classes.copy()
    broken[7] = broken[3]
    rewrite.tables[0] = ClassTable(0, broken, 2)
    with pytest.raises(ValueError, match="tree 0 node 0: threshold column 0 sends code 7 to node"):
        threshold_columns.check(single, new, rewrite, {0: CODES})


def test_the_exported_forest_is_one_node_mode(pipeline: PricePipeline) -> None:
    """The graph built by default walks only BRANCH_LEQ nodes (onnxruntime's one-mode loop)."""
    graph = onnx_graph.build_graph(pipeline)
    (forest,) = (
        node
        for node in graph.graph.node
        if node.op_type == "TreeEnsemble" and "trees_" in node.name
    )
    assert set(numpy_helper.to_array(_attributes(forest)["nodes_modes"]).tolist()) == {_LEQ}
