import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import DoubleTensorType

from shared_schema import FIELD_NAMES
from training.core.model import PricePipeline
from training.io import onnx_graph
from training.io.tree_ensemble import collapse_categorical_chains


def _chained(pipeline: PricePipeline) -> bytes:
    """The booster as onnxmltools writes it: categorical splits as BRANCH_EQ chains."""
    model = convert_lightgbm(
        pipeline.booster,
        initial_types=[("features", DoubleTensorType([None, len(FIELD_NAMES)]))],
        target_opset=15,
        zipmap=False,
    )
    return bytes(model.SerializeToString())


def _run(model_bytes: bytes, features: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    (name,) = (o.name for o in session.get_outputs())
    return np.asarray(session.run([name], {"features": features})[0])


def test_set_membership_forest_predicts_exactly_like_the_chains(pipeline: PricePipeline) -> None:
    """The rewritten forest gives bit-identical outputs and has fewer nodes."""
    chained = _chained(pipeline)
    collapsed, counts = collapse_categorical_chains(chained)
    rng = np.random.default_rng(0)
    features = rng.uniform(0, 30, size=(500, len(FIELD_NAMES)))
    features[:, :3] = rng.integers(0, 12, size=(500, 3))  # category-code-like columns
    np.testing.assert_array_equal(_run(collapsed, features), _run(chained, features))
    assert counts["nodes_after"] < counts["nodes_before"]
    ops = {node.op_type for node in onnx.load_from_string(collapsed).graph.node}
    assert "TreeEnsemble" in ops
    assert "TreeEnsembleRegressor" not in ops


def test_the_sets_form_uses_set_membership_nodes(pipeline: PricePipeline) -> None:
    """The `sets` graph holds one TreeEnsemble (ai.onnx.ml 5) with BRANCH_MEMBER, no chains.

    (The exported form turns those sets into thresholds: `test_threshold_columns`.)
    """
    model = onnx_graph.build_graph(pipeline, forest="sets")
    forests = [
        node for node in model.graph.node if node.domain == "ai.onnx.ml" and "Tree" in node.op_type
    ]
    assert [node.op_type for node in forests] == ["TreeEnsemble"]
    modes = onnx.numpy_helper.to_array(
        next(a.t for a in forests[0].attribute if a.name == "nodes_modes")
    )
    assert (modes == 6).any()  # BRANCH_MEMBER: the synthetic booster splits on categories
    assert {o.version for o in model.opset_import if o.domain == "ai.onnx.ml"} == {5}


def test_graph_without_a_forest_is_refused() -> None:
    """A graph with nothing to rewrite is an error, not a silent copy."""
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    with pytest.raises(ValueError, match="no TreeEnsembleRegressor"):
        collapse_categorical_chains(onnx.helper.make_model(graph).SerializeToString())
