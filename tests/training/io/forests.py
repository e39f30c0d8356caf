"""One `TreeEnsemble` node run alone by onnxruntime, for the forest rewrites' tests."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper


def run_forest(forest: onnx.NodeProto, rows: np.ndarray) -> np.ndarray:
    """The forest's output per row: `forest` reads `features` (float64 rows), writes `score`."""
    graph = helper.make_graph(
        [forest],
        "forest",
        [helper.make_tensor_value_info("features", TensorProto.DOUBLE, [None, None])],
        [helper.make_tensor_value_info("score", TensorProto.DOUBLE, [None, 1])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 5)]
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"features": np.ascontiguousarray(rows)})[0]).ravel()
