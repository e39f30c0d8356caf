"""The model benchmark times the served graph and the graph before issue 21, each fed its own way.

The served graph takes grouped inputs; the graph before issue 21, rebuilt from the same booster,
takes one input per field. `make bench` once fed both the served graph's feeds, so every model
cell was "not measured"; its quick run has no booster and cannot see that.
"""

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from benchmarks.champion import Champion

from benchmarks import model_bench
from shared_schema import FIELD_NAMES
from shared_schema.bundle import GROUPED_INPUT_NAMES
from training.core.model import PricePipeline
from training.io.exporter import export_bundle


def test_both_graphs_are_timed_on_their_own_inputs_with_the_pipelines_prices(
    pipeline: PricePipeline,
    cars: dict[str, pd.DataFrame],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Parity of both graphs against the pipeline, and each onnx cell's call runs."""
    export_bundle(pipeline, cars["test"], tmp_path, training_data_hash="t", model_name="car-price")
    champion = Champion(tmp_path, pipeline_dir=tmp_path / "no-files-needed")
    champion.__dict__["pipeline"] = pipeline  # the trained one, in place of reading its files

    def no_lleaves(*_: Any) -> None:
        raise RuntimeError("lleaves is not compiled in this test")

    monkeypatch.setattr(model_bench, "compile_lleaves", no_lleaves)
    frame = cars["test"][list(FIELD_NAMES)]  # what `held_out_rows` reads
    runtimes = model_bench.Runtimes(champion, frame, tmp_path / "lleaves")
    assert {spec.name for spec in champion.manifest.inputs} == set(GROUPED_INPUT_NAMES.values())

    runtimes.parity()

    for graph in ("onnx", "onnx_before"):
        assert runtimes.notes[graph]["parity_vs_pipeline"] < 1e-5, graph
    rows = frame.head(3)
    for variant in ("onnx", "onnx_from_structs", "onnx_before", "onnx_before_cold"):
        (price,) = runtimes.call(variant, rows)()
        assert price.shape == (3, 1), variant
