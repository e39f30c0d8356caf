"""The layout study's `in_parts`: a forest cut into parts and summed prices as the whole did."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from studies.forest_representation.layout import in_parts

_FEATURES = 3


def _forest(trees: int, seed: int, *, mode: int = 0, aggregate: int = 1) -> onnx.NodeProto:
    """A random `BRANCH_LEQ` forest (depth up to 4), leaves numbered in the order met."""
    rng = np.random.default_rng(seed)
    columns: dict[str, list[int]] = {k: [] for k in ("f", "tn", "tl", "fn", "fl")}
    splits: list[float] = []
    weights: list[float] = []

    def grow(depth: int) -> tuple[int, int]:
        if depth == 4 or (depth > 0 and rng.random() < 0.3):
            weights.append(float(rng.normal()))
            return len(weights) - 1, 1
        node = len(splits)
        splits.append(float(rng.normal()))
        columns["f"].append(int(rng.integers(_FEATURES)))
        for key in ("tn", "tl", "fn", "fl"):
            columns[key].append(0)
        for side in ("t", "f"):
            child, leaf = grow(depth + 1)
            columns[f"{side}n"][node], columns[f"{side}l"][node] = child, leaf
        return node, 0

    roots = [grow(0)[0] for _ in range(trees)]
    return helper.make_node(
        "TreeEnsemble",
        ["features"],
        ["score"],
        name="trees",
        domain="ai.onnx.ml",
        aggregate_function=aggregate,
        n_targets=1,
        post_transform=0,
        tree_roots=roots,
        nodes_modes=numpy_helper.from_array(np.full(len(splits), mode, dtype=np.uint8)),
        nodes_featureids=columns["f"],
        nodes_splits=numpy_helper.from_array(np.asarray(splits, dtype=np.float32)),
        nodes_truenodeids=columns["tn"],
        nodes_trueleafs=columns["tl"],
        nodes_falsenodeids=columns["fn"],
        nodes_falseleafs=columns["fl"],
        nodes_missing_value_tracks_true=[1] * len(splits),
        leaf_targetids=[0] * len(weights),
        leaf_weights=numpy_helper.from_array(np.asarray(weights, dtype=np.float32)),
    )


def _scores(nodes: list[onnx.NodeProto], rows: np.ndarray) -> np.ndarray:
    graph = helper.make_graph(
        nodes,
        "forest",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, _FEATURES])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 5)]
    )
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"features": rows})[0])


@pytest.mark.parametrize(("trees", "parts"), [(7, 3), (4, 4), (5, 1)])
def test_the_parts_summed_price_every_row_as_the_whole_forest(trees: int, parts: int) -> None:
    """Random rows (NaN included) get the whole forest's score from its parts, to float32."""
    forest = _forest(trees, seed=trees * 10 + parts)
    rows = np.random.default_rng(1).normal(size=(500, _FEATURES)).astype(np.float32)
    rows[::7, 1] = np.nan
    whole = _scores([forest], rows)
    cut = in_parts(forest, parts)
    assert [node.op_type for node in cut] == ["TreeEnsemble"] * parts + ["Sum"]
    np.testing.assert_allclose(_scores(cut, rows), whole, rtol=1e-5, atol=1e-5)


def test_a_forest_the_cut_would_change_is_refused_naming_the_node() -> None:
    """A member-mode node (its set would not follow it) and an averaging forest are refused."""
    with pytest.raises(ValueError, match="node 0 has mode 6"):
        in_parts(_forest(3, seed=0, mode=6), 2)
    with pytest.raises(ValueError, match="sums its trees"):
        in_parts(_forest(3, seed=0, aggregate=0), 2)
