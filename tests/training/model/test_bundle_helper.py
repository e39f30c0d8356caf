"""`bundle_from_frame`: other test suites build a real bundle from synthetic rows with it."""

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from shared_schema import FIELD_NAMES
from training.io import bundle, onnx_graph
from training.jobs.export import bundle_from_frame


def test_bundle_from_frame_writes_a_scoring_bundle(tmp_path: Path, make_cars: Any) -> None:
    """A bundle trained on synthetic rows verifies, scores, and records its version."""
    frame = make_cars(600, seed=5)
    manifest = bundle_from_frame(frame, tmp_path / "model", model_version="7")
    model_bytes, on_disk = bundle.read(tmp_path / "model")
    assert on_disk == json.loads(json.dumps(manifest))
    assert manifest["model_version"] == "7"
    assert manifest["sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert [i["name"] for i in manifest["inputs"]] == list(FIELD_NAMES)
    price = onnx_graph.run_graph(model_bytes, onnx_graph.graph_inputs(frame.head(50)))
    ratio = price / frame["price"].head(50).to_numpy()
    assert np.median(np.abs(np.log(ratio))) < 0.3
