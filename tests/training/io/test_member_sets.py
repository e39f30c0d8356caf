"""Categorical sets re-coded as class columns: same routes for every code, sets the mask takes."""

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import helper, numpy_helper

from training.core.model import PricePipeline
from training.errors import PipelineError
from training.io import member_sets, onnx_graph, onnx_scoring, tree_ensemble
from training.io.exporter import export_bundle, parity

from .forests import run_forest

CODES = 100


def _forest(sets: list[list[float]], modes: list[int] | None = None) -> onnx.NodeProto:
    """One tree per set: `code in set` → leaf 2 × tree + 1, else leaf 2 × tree (feature 0)."""
    count = len(sets)
    members = [value for values in sets for value in [*values, float("nan")]]
    return helper.make_node(
        "TreeEnsemble",
        ["features"],
        ["score"],
        domain="ai.onnx.ml",
        aggregate_function=1,
        n_targets=1,
        post_transform=0,
        tree_roots=list(range(count)),
        nodes_modes=numpy_helper.from_array(np.asarray(modes or [6] * count, dtype=np.uint8)),
        nodes_featureids=[0] * count,
        nodes_splits=numpy_helper.from_array(np.zeros(count)),
        nodes_truenodeids=[2 * tree + 1 for tree in range(count)],
        nodes_trueleafs=[1] * count,
        nodes_falsenodeids=[2 * tree for tree in range(count)],
        nodes_falseleafs=[1] * count,
        nodes_missing_value_tracks_true=[0] * count,
        membership_values=numpy_helper.from_array(np.asarray(members)),
        leaf_targetids=[0] * (2 * count),
        # Powers of two: the sum tells which trees took their true branch.
        leaf_weights=numpy_helper.from_array(
            np.asarray([w for tree in range(count) for w in (0.0, 2.0**tree)])
        ),
    )


def _scores(forest: onnx.NodeProto, tables: list[member_sets.ClassTable]) -> np.ndarray:
    """The forest's output for every code 0..CODES-1, class columns looked up as the graph does."""
    codes = np.arange(CODES, dtype=np.float64).reshape(-1, 1)
    columns = [codes] + [table.classes[codes[:, 0].astype(int)] for table in tables]
    return run_forest(forest, np.hstack(columns))


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _rewrite(sets: list[list[float]]) -> tuple[onnx.NodeProto, onnx.NodeProto, member_sets.Rewrite]:
    old = _forest(sets)
    new, rewrite = member_sets.to_class_columns(old, {0: CODES}, 1, ["model_name"])
    return old, new, rewrite


def test_recoded_sets_route_every_code_as_the_original_sets() -> None:
    """Overlapping large sets (codes up to 99, 40 members) give the same tree outputs per code."""
    rng = np.random.default_rng(0)
    sets = [
        sorted(rng.choice(CODES, size=int(rng.integers(2, 41)), replace=False)) for _ in range(40)
    ]
    old, new, rewrite = _rewrite([[float(v) for v in s] for s in sets])
    assert (rewrite.rewritten, rewrite.fallbacks) == (40, [])
    assert [table.classes.shape[1] > 1 for table in rewrite.tables] == [True]
    np.testing.assert_array_equal(_scores(new, rewrite.tables), _scores(old, []))


def test_recoded_sets_are_what_the_bitmask_takes() -> None:
    """Every rewritten set has at most 30 members, all in 1..30, on a class column."""
    _, new, rewrite = _rewrite([[1.0, 45.0, 99.0], [0.0, 2.0], [*map(float, range(3, 70))]])
    members = tree_ensemble.member_lists(_attributes(new))
    assert rewrite.rewritten == 3
    for values in members.values():
        assert len(values) <= 30
        assert all(1 <= v <= 30 and v == int(v) for v in values)
    assert set(_attributes(new)["nodes_featureids"]) == {1}


def test_sets_that_already_fit_the_mask_stay_on_the_code() -> None:
    """A small set of codes 1..30 is left alone: no class column is added for it."""
    _, new, rewrite = _rewrite([[1.0, 5.0, 30.0]])
    assert (rewrite.rewritten, rewrite.tables) == (0, [])
    assert _attributes(new)["nodes_featureids"] == [0]


def test_a_member_past_the_fronts_codes_falls_back_and_is_named() -> None:
    """A set with a code the front never produces keeps its set, and the split is named."""
    old, new, rewrite = _rewrite([[3.0, 150.0], [40.0, 41.0]])
    assert rewrite.rewritten == 1
    assert rewrite.fallbacks == [
        "tree 0 node 0 (model_name): members [150.0] outside the front's codes 0..99"
    ]
    np.testing.assert_array_equal(_scores(new, rewrite.tables), _scores(old, []))


def test_an_unknown_node_mode_is_refused_with_the_split_named() -> None:
    """A node mode TreeEnsemble does not define is an error naming its tree and node."""
    forest = _forest([[1.0, 2.0], [3.0, 4.0]], modes=[6, 9])
    with pytest.raises(ValueError, match="tree 1 node 1: unknown node mode 9"):
        member_sets.to_class_columns(forest, {0: CODES}, 1, ["model_name"])


def test_check_names_a_split_whose_classes_disagree_with_its_set() -> None:
    """A broken class table (one code moved to another class) fails, naming tree, node, code."""
    old, new, rewrite = _rewrite([[1.0, 45.0, 99.0], [2.0, 45.0]])
    broken = rewrite.tables[0].classes.copy()
    broken[7] = broken[45]
    rewrite.tables[0] = member_sets.ClassTable(0, broken, 1)
    with pytest.raises(ValueError, match="tree 0 node 0: class column 0 sends code 7 into"):
        member_sets.check(old, new, rewrite, {0: CODES})


def test_graph_with_class_columns_keeps_parity_with_the_pipeline(
    pipeline: PricePipeline, cars: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a 2-class mask every categorical set is re-coded; prices stay the pipeline's."""
    monkeypatch.setattr(member_sets, "MASK_CLASSES", 2)
    graph = onnx_graph.build_graph(pipeline, forest="class_columns")
    assert any(node.op_type == "Gather" for node in graph.graph.node)
    inputs = onnx_graph.input_spec(graph)
    assert parity(graph.SerializeToString(), inputs, pipeline, cars["test"]) < 1e-5
    feeds = onnx_scoring.frame_feeds(cars["test"], inputs)
    price = onnx_scoring.run_graph(graph.SerializeToString(), feeds)
    np.testing.assert_allclose(price, pipeline.predict_price(cars["test"]), rtol=1e-5)


def _leaves_of(attributes: dict[str, Any], tree: int) -> list[int]:
    """The leaf indices of one tree of a TreeEnsemble."""
    stack, leaves = [attributes["tree_roots"][tree]], []
    while stack:
        node = stack.pop()
        for side in ("true", "false"):
            child = attributes[f"nodes_{side}nodeids"][node]
            (leaves if attributes[f"nodes_{side}leafs"][node] else stack).append(child)
    return leaves


def test_a_graph_off_the_booster_fails_export_naming_the_row_and_the_tree(
    tmp_path: Path,
    pipeline: PricePipeline,
    cars: dict[str, pd.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Leaves of tree 2 moved by 0.05: export refuses, naming the worst row and tree 2."""
    graph = onnx_graph.build_graph(pipeline)
    forest = next(node for node in graph.graph.node if node.op_type == "TreeEnsemble")
    attributes = _attributes(forest)
    weights = numpy_helper.to_array(attributes["leaf_weights"]).copy()
    weights[_leaves_of(attributes, 2)] += 0.05
    (slot,) = (a for a in forest.attribute if a.name == "leaf_weights")
    slot.t.CopyFrom(numpy_helper.from_array(weights))
    monkeypatch.setattr(onnx_graph, "build_graph", lambda *_, **__: graph)
    with pytest.raises(PipelineError, match=r"worst row \d+ \(index \d+\), tree 2: graph leaf"):
        export_bundle(
            pipeline, cars["test"], tmp_path / "m", training_data_hash="t", model_name="car-price"
        )


def test_routing_nan_like_zero_refuses_an_unknown_mode_naming_the_node() -> None:
    """NaN is sent where 0 goes; a node whose mode says nothing of 0 is named, not guessed."""
    from training.io import graph_front

    forest = _forest([[1.0, 2.0], [3.0, 4.0]], modes=[6, 9])
    with pytest.raises(ValueError, match=r"node 1 \(feature 0\): unknown node mode 9"):
        graph_front.route_missing_like_zero(forest, {0})
    routed = graph_front.route_missing_like_zero(_forest([[0.0, 2.0], [3.0, 4.0]]), {0})
    assert _attributes(routed)["nodes_missing_value_tracks_true"][:2] == [1, 0]


def test_a_forest_without_set_splits_is_routed_and_walked() -> None:
    """Thresholds only, no BRANCH_MEMBER (a small forest): routing and the walker still work."""
    from training.io import graph_front

    forest = _forest([[1.0], [2.0]], modes=[0, 3])
    for attribute in forest.attribute:
        if attribute.name == "membership_values":
            attribute.t.CopyFrom(numpy_helper.from_array(np.zeros(0)))
    routed = graph_front.route_missing_like_zero(forest, {0})
    # Splits at 0: 0 <= 0 goes true, 0 > 0 does not.
    assert _attributes(routed)["nodes_missing_value_tracks_true"] == [1, 0]
    assert tree_ensemble.leaf_values(routed, np.array([np.nan])) == [1.0, 0.0]
