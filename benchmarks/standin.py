"""A stand-in champion for developing the benchmarks before the real model exists.

It is trained on the same real features table (2020 rows, the non-held-out 80 %) with the
shape the real pipeline has: an sklearn pipeline (ordinal encoding of the categories, numbers
passed through) feeding LightGBM on log price, exported to one ONNX graph with raw strings in
and `price` out. Results measured on it are labelled "stand-in" everywhere.
"""

import hashlib
import json
import logging
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from benchmarks.data import is_held_out, labelled_rows
from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES, NUMERIC_FIELDS, SCHEMA_VERSION

logger = logging.getLogger(__name__)

STANDIN_DIR: Final = Path("data/bench/standin")
PIPELINE_FILE: Final = "pipeline.joblib"
BOOSTER_FILE: Final = "booster.txt"
#: lightgbm 4.5's sklearn wrapper passes an argument scikit-learn 1.6 renamed: a FutureWarning
#: on every fit and predict, harmless here. Entry points silence it with `quiet_sklearn()`.
SKLEARN_RENAME: Final = ".*force_all_finite.*"


def quiet_sklearn() -> None:
    """Ignore the `force_all_finite` FutureWarning process-wide (call from entry points)."""
    warnings.filterwarnings("ignore", message=SKLEARN_RENAME, category=FutureWarning)


# Close to what a tuned car-price LightGBM ends up with, so timings are representative.
_LGBM_PARAMS: Final = {
    "n_estimators": 600,
    "num_leaves": 63,
    "learning_rate": 0.05,
    "min_child_samples": 20,
    "random_state": 0,
    "n_jobs": 1,
    "verbose": -1,
}


class StandInPipeline:
    """The training-time model as a typical service calls it: DataFrame in, RUB out."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def predict(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Prices in RUB for the raw rows of `frame`."""
        return np.exp(self.pipeline.predict(frame[list(FIELD_NAMES)]))

    def encode(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        """The numeric matrix the booster sees for the raw rows of `frame`."""
        return np.asarray(self.pipeline[:-1].transform(frame[list(FIELD_NAMES)]), dtype=np.float64)

    @property
    def booster(self) -> Any:
        """The fitted LightGBM booster (predicts log price)."""
        return self.pipeline[-1].booster_


def _sklearn_pipeline(overrides: dict[str, Any]) -> Any:
    from lightgbm import LGBMRegressor
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    encoder = OrdinalEncoder(
        handle_unknown="use_encoded_value",
        unknown_value=-1,
        encoded_missing_value=-1,
        dtype=np.float64,
    )
    columns = ColumnTransformer(
        [
            ("categories", encoder, list(CATEGORICAL_FIELDS)),
            ("numbers", "passthrough", list(NUMERIC_FIELDS)),
        ],
        verbose_feature_names_out=False,
    )
    return Pipeline(
        [("encode", columns), ("model", LGBMRegressor(**{**_LGBM_PARAMS, **overrides}))]
    )


def _onnx_graph(pipeline: Any) -> bytes:
    """Raw strings and float32 numbers in, `price` out: encoding, trees and exp in one graph."""
    import onnx
    from onnx import TensorProto, helper
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    encoder = pipeline[0].named_transformers_["categories"]
    n_features = len(FIELD_NAMES)
    trees = convert_lightgbm(
        pipeline[-1],
        initial_types=[("features", FloatTensorType([None, n_features]))],
        target_opset=15,
        zipmap=False,
    )
    nodes: list[onnx.NodeProto] = []
    inputs: list[onnx.ValueInfoProto] = []
    encoded: list[str] = []
    for name, categories in zip(CATEGORICAL_FIELDS, encoder.categories_, strict=True):
        nodes.append(
            helper.make_node(
                "LabelEncoder",
                [name],
                [f"{name}_code"],
                domain="ai.onnx.ml",
                keys_strings=[str(value) for value in categories],
                values_floats=[float(index) for index in range(len(categories))],
                default_float=-1.0,
            )
        )
        encoded.append(f"{name}_code")
    for name in FIELD_NAMES:
        kind = TensorProto.STRING if name in CATEGORICAL_FIELDS else TensorProto.FLOAT
        inputs.append(helper.make_tensor_value_info(name, kind, [None, 1]))
    nodes.append(helper.make_node("Concat", [*encoded, *NUMERIC_FIELDS], ["features"], axis=1))
    nodes.extend(trees.graph.node)
    (tree_output,) = (output.name for output in trees.graph.output)
    nodes.append(helper.make_node("Exp", [tree_output], ["price"]))
    # LabelEncoder with string keys needs ai.onnx.ml 2; the trees may ask for more.
    ml_opset = max(
        [2, *(item.version for item in trees.opset_import if item.domain == "ai.onnx.ml")]
    )
    graph = helper.make_graph(
        nodes,
        "standin_car_price",
        inputs,
        [helper.make_tensor_value_info("price", TensorProto.FLOAT, [None, 1])],
        initializer=list(trees.graph.initializer),
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", ml_opset)],
        producer_name="benchmarks.standin",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def build_standin(root: Path = Path(), directory: Path = STANDIN_DIR) -> Path:
    """Train the stand-in on the real 2020 rows (80 %) and write it; reuse it if present.

    Returns:
        The bundle directory (`model.onnx`, `manifest.json`, `pipeline.joblib`, `booster.txt`).
    """
    target = root / directory
    if (target / "manifest.json").exists() and (target / PIPELINE_FILE).exists():
        return target
    frame = labelled_rows(root)
    train = frame[~frame["listing_id"].map(is_held_out)]
    logger.info("training the stand-in on %d rows", len(train))
    return write_standin(train, target)


def write_standin(train: pd.DataFrame, target: Path, **lgbm_params: Any) -> Path:
    """Fit the stand-in on `train` (raw fields and `price`) and write its files to `target`.

    Args:
        train: Training rows.
        target: Output directory, created if missing.
        **lgbm_params: Overrides of the LightGBM parameters (tests train a tiny model).

    Returns:
        `target`.
    """
    import joblib

    target.mkdir(parents=True, exist_ok=True)
    pipeline = _sklearn_pipeline(lgbm_params)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=SKLEARN_RENAME, category=FutureWarning)
        pipeline.fit(train[list(FIELD_NAMES)], np.log(train["price"]))
    model_bytes = _onnx_graph(pipeline)
    encoder = pipeline[0].named_transformers_["categories"]
    manifest = {
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "schema_version": SCHEMA_VERSION,
        "model_name": "car-price-standin",
        "model_version": "standin-1",
        "created_at": datetime.now(UTC).isoformat(),
        "inputs": [
            {"name": name, "type": "string" if name in CATEGORICAL_FIELDS else "float"}
            for name in FIELD_NAMES
        ],
        "output": "price",
        "metrics": {},
        "training_data_hash": "standin",
        "parity_max_rel_diff": 0.0,
        "categories": {
            name: [str(value) for value in values]
            for name, values in zip(CATEGORICAL_FIELDS, encoder.categories_, strict=True)
        },
    }
    joblib.dump(StandInPipeline(pipeline), target / PIPELINE_FILE)
    pipeline[-1].booster_.save_model(str(target / BOOSTER_FILE))
    (target / "model.onnx").write_bytes(model_bytes)
    (target / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False))
    return target


def main() -> int:
    """Build the stand-in bundle under data/bench/standin."""
    logging.basicConfig(level=logging.INFO)
    # Through the package, not __main__, so the pickled pipeline's class has an importable home.
    import importlib

    print(importlib.import_module("benchmarks.standin").build_standin())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
