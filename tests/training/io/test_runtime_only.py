"""The exported bundle is usable with onnxruntime alone: no training code, pandas or LightGBM."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES
from training.core.model import PricePipeline
from training.io.exporter import export_bundle

# Runs in a fresh interpreter: reads the bundle and JSON rows, scores them with onnxruntime,
# and reports the prices; it imports nothing of training, pandas or LightGBM (run with -I).
_SCORER = """
import json, sys
import numpy as np
import onnxruntime as ort

bundle, rows_file = sys.argv[1], sys.argv[2]
manifest = json.load(open(bundle + "/manifest.json", encoding="utf-8"))
rows = json.load(open(rows_file, encoding="utf-8"))
feeds = {}
for item in manifest["inputs"]:
    # An input is one field [N, 1], or the fields it lists side by side [N, len(fields)].
    fields = item.get("fields") or [item["name"]]
    values = [[row[name] for name in fields] for row in rows]
    if item["type"] == "string":
        feeds[item["name"]] = np.array(values, dtype=object).reshape(-1, len(fields))
    else:
        feeds[item["name"]] = np.array(
            [[np.nan if v is None else v for v in row] for row in values], dtype=np.float32
        ).reshape(-1, len(fields))
session = ort.InferenceSession(bundle + "/model.onnx", providers=["CPUExecutionProvider"])
(price,) = session.run(["price"], feeds)
print(json.dumps({"price": price.reshape(-1).tolist()}))
"""


def test_bundle_scores_in_a_bare_onnxruntime_process(
    tmp_path: Path, pipeline: PricePipeline, unseen_cars: pd.DataFrame
) -> None:
    """A subprocess importing only onnxruntime + numpy reproduces the pipeline's prices."""
    bundle = tmp_path / "model"
    export_bundle(pipeline, unseen_cars, bundle, training_data_hash="t", model_name="car-price")
    rows = [
        {
            name: (
                str(row[name])
                if name in CATEGORICAL_FIELDS
                else (None if pd.isna(row[name]) else float(row[name]))
            )
            for name in FIELD_NAMES
        }
        for _, row in unseen_cars.iterrows()
    ]
    rows_file = tmp_path / "rows.json"
    rows_file.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    script = tmp_path / "score.py"
    script.write_text(_SCORER, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-I", str(script), str(bundle), str(rows_file)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    report = json.loads(result.stdout)
    expected = pipeline.predict_price(unseen_cars)
    np.testing.assert_allclose(report["price"], expected, rtol=1e-4)
