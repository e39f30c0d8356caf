"""Fixtures shared across test packages.

`write_bundle` builds a small, real model bundle honouring the serving contract exactly: one
graph input per `shared_schema` field (tensor(string) for categories, float32 for numbers with
NaN for missing), one float32 output `price`, and a manifest with the model's sha256. The graph
encodes each category with a LabelEncoder, replaces missing numbers by 0, applies a linear
formula and exponentiates, so prices land in a realistic rouble range.
"""

import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES, NUMERIC_FIELDS, SCHEMA_VERSION
from shared_schema.bundle import (
    LOWER_OUTPUT,
    MANIFEST_FILE,
    MODEL_FILE,
    PRICE_OUTPUT,
    UPPER_OUTPUT,
    IntervalInfo,
    Manifest,
    decode_manifest,
    manifest_inputs,
)
from shared_schema.serving_folder import Pointer

from .programs import declare


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before a test's fixtures: the programs its `needs` markers name are there (programs.py)."""
    declare(item)


#: Known categories per field written to the manifest; other values encode as 0.
TEST_VOCABULARY: dict[str, list[str]] = {
    "brand": ["BMW", "TOYOTA", "MERCEDES", "AUDI"],
    "model_name": ["5ER", "CAMRY", "E_KLASSE", "A6"],
    "body_type": ["седан", "внедорожник", "хэтчбек"],
    "color": ["чёрный", "белый", "серый"],
    "fuel_type": ["бензин", "дизель", "гибрид"],
    "vehicle_transmission": ["автомат", "механика", "робот", "вариатор"],
    "drive_type": ["передний", "полный", "задний"],
    "n_owners": ["1", "2", "3+", "unknown"],
}

# Per-numeric-field weights of log(price); missing numbers contribute 0.
_NUMERIC_WEIGHTS: dict[str, float] = {
    "model_year": 0.02,
    "production_year": 0.05,
    "n_doors": 0.01,
    "engine_power": 0.002,
    "engine_displacement": 0.05,
    "mileage": -2e-6,
    "is_original_techpass": 0.05,
    "is_lefthand_drive": 0.02,
}
_CATEGORY_STEP = 0.03
#: Intercept of log(price) that puts a 2012 BMW 5ER near 1.3 million roubles.
DEFAULT_BIAS = -127.6


#: The test graph's interval (when asked for): price × these factors.
INTERVAL_FACTORS = (0.8, 1.25)


def build_model_bytes(
    bias: float = DEFAULT_BIAS, *, interval: bool = False, slow_steps: int = 0
) -> bytes:
    """Serialize the test graph: `price = exp(bias + w·x)` with encoded categories.

    Args:
        bias: Intercept of log(price); changing it changes every price, which tests of hot
            reload use to tell models apart.
        interval: Also output `price_lower` and `price_upper` (price × `INTERVAL_FACTORS`).
        slow_steps: Add this many 512 × 512 matrix products per row whose result is added
            times zero: the same prices, a slower graph (a canary whose latency regressed).

    Returns:
        The ONNX model bytes.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[onnx.NodeProto] = []
    inputs: list[onnx.ValueInfoProto] = []
    columns: list[str] = []
    for name in FIELD_NAMES:
        if name in CATEGORICAL_FIELDS:
            inputs.append(helper.make_tensor_value_info(name, TensorProto.STRING, [None, 1]))
            vocabulary = TEST_VOCABULARY[name]
            nodes.append(
                helper.make_node(
                    "LabelEncoder",
                    [name],
                    [f"{name}_code"],
                    domain="ai.onnx.ml",
                    keys_strings=vocabulary,
                    values_floats=[float(index + 1) for index in range(len(vocabulary))],
                    default_float=0.0,
                )
            )
            columns.append(f"{name}_code")
        else:
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 1]))
            nodes.append(helper.make_node("IsNaN", [name], [f"{name}_isnan"]))
            nodes.append(
                helper.make_node("Where", [f"{name}_isnan", "zero", name], [f"{name}_filled"])
            )
            columns.append(f"{name}_filled")
    weights = np.array(
        [
            _NUMERIC_WEIGHTS[name] if name in NUMERIC_FIELDS else _CATEGORY_STEP
            for name in FIELD_NAMES
        ],
        dtype=np.float32,
    ).reshape(len(FIELD_NAMES), 1)
    nodes += [
        helper.make_node("Concat", columns, ["features"], axis=1),
        helper.make_node("MatMul", ["features", "weights"], ["linear"]),
        helper.make_node("Add", ["linear", "bias"], ["log_price" if not slow_steps else "fast"]),
        helper.make_node("Exp", ["log_price"], [PRICE_OUTPUT]),
        *(
            [
                helper.make_node("Mul", [PRICE_OUTPUT, "low_factor"], [LOWER_OUTPUT]),
                helper.make_node("Mul", [PRICE_OUTPUT, "high_factor"], [UPPER_OUTPUT]),
            ]
            if interval
            else []
        ),
    ]
    slow: list[onnx.TensorProto] = []
    if slow_steps:
        # Depends on the input, so onnxruntime cannot fold it away when the session opens.
        slow_nodes = [helper.make_node("Expand", ["linear", "slow_shape"], ["slow_0"])]
        slow_nodes += [
            helper.make_node("MatMul", [f"slow_{step}", "slow_mix"], [f"slow_{step + 1}"])
            for step in range(slow_steps)
        ]
        slow_nodes += [
            helper.make_node("ReduceMean", [f"slow_{slow_steps}"], ["slow_mean"], axes=[1]),
            helper.make_node("Mul", ["slow_mean", "zero"], ["slow_zero"]),
            helper.make_node("Add", ["fast", "slow_zero"], ["log_price"]),
        ]
        after = next(i for i, node in enumerate(nodes) if "fast" in node.output) + 1
        nodes[after:after] = slow_nodes
        slow = [
            numpy_helper.from_array(np.array([1, 512], dtype=np.int64), "slow_shape"),
            # Averaging: every product stays the input's value, finite.
            numpy_helper.from_array(np.full((512, 512), 1 / 512, dtype=np.float32), "slow_mix"),
        ]
    graph = helper.make_graph(
        nodes,
        "test_car_price",
        inputs,
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 1])
            for name in (PRICE_OUTPUT, LOWER_OUTPUT, UPPER_OUTPUT)[: 3 if interval else 1]
        ],
        initializer=[
            numpy_helper.from_array(np.array([0.0], dtype=np.float32), "zero"),
            numpy_helper.from_array(weights, "weights"),
            numpy_helper.from_array(np.array([bias], dtype=np.float32), "bias"),
            *slow,
            *(
                numpy_helper.from_array(np.array([factor], dtype=np.float32), name)
                for name, factor in zip(
                    ("low_factor", "high_factor"), INTERVAL_FACTORS, strict=True
                )
                if interval
            ),
        ],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 2)],
        producer_name="tests",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_bundle(
    directory: Path,
    *,
    model_version: str = "1",
    bias: float = DEFAULT_BIAS,
    interval: bool = False,
    slow_steps: int = 0,
    schema_version: str = SCHEMA_VERSION,
    categories: dict[str, list[str]] | None = TEST_VOCABULARY,
    **manifest_overrides: Any,
) -> Path:
    """Write `model.onnx` and `manifest.json` into `directory`, model first, each atomically.

    Args:
        directory: Bundle directory, created if missing.
        model_version: Version recorded in the manifest.
        bias: Intercept of the graph (see `build_model_bytes`).
        interval: Also output `price_lower`/`price_upper` (price × `INTERVAL_FACTORS`).
        slow_steps: A slower graph of the same prices (see `build_model_bytes`).
        schema_version: Schema version recorded in the manifest.
        categories: Vocabulary recorded in the manifest; None records none.
        **manifest_overrides: Manifest keys to replace or add (raw JSON values, so tests can
            write manifests the contract refuses).

    Returns:
        The bundle directory.
    """
    directory.mkdir(parents=True, exist_ok=True)
    model_bytes = build_model_bytes(bias, interval=interval, slow_steps=slow_steps)
    manifest: dict[str, Any] = msgspec.to_builtins(
        Manifest(
            sha256=hashlib.sha256(model_bytes).hexdigest(),
            schema_version=schema_version,
            model_name="car-price",
            model_version=model_version,
            inputs=manifest_inputs(),
            metrics={"mape": 0.1},
            training_data_hash="test",
            parity_max_rel_diff=0.0,
            categories=categories,
            interval=IntervalInfo(
                nominal=0.8, calibration_rows=100, coverage=0.8, mean_relative_width=0.45
            )
            if interval
            else None,
            created_at="2026-01-01T00:00:00+00:00",
        )
    )
    manifest.update(manifest_overrides)
    _write_atomically(directory / MODEL_FILE, model_bytes)
    _write_atomically(directory / MANIFEST_FILE, msgspec.json.encode(manifest))
    return directory


def _write_atomically(path: Path, content: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    partial.replace(path)


@pytest.fixture(scope="session", autouse=True)
def _no_operator_mlflow() -> Iterator[None]:
    """Keep a developer's MLFLOW_TRACKING_URI away from every test (each has its own store).

    `MlflowService.from_params` prefers it to params.yaml, as production wants; in a test it
    would send synthetic runs, versions and alias moves to that server. Session-wide, so module
    fixtures that train before any test runs see it unset too.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield


@pytest.fixture(scope="session")
def bundle_writer() -> Callable[..., Path]:
    """`write_bundle` itself, for tests that write several bundles (see its docstring)."""
    return write_bundle


def publish_bundle(folder: Path, **bundle: Any) -> Pointer:
    """Publish a test bundle into the serving folder `folder` with the one publisher.

    `write_bundle(**bundle)` into a scratch directory, then `training.io.serving.publish`, as
    `car-train fetch-model` does with a registry's bundle.

    Returns:
        The pointer `current` holds afterwards.
    """
    from training.io import serving

    with tempfile.TemporaryDirectory(prefix="test-bundle-") as scratch:
        plain = write_bundle(Path(scratch), **bundle)
        model_bytes = (plain / MODEL_FILE).read_bytes()
        manifest = decode_manifest((plain / MANIFEST_FILE).read_bytes())
    return serving.publish(folder, model_bytes, manifest).pointer


def stage_bundle(folder: Path, **bundle: Any) -> Pointer:
    """Stage a test bundle as the serving folder's challenger with `training.io.serving.stage`.

    As `car-train stage` does with a registry's bundle; `current` is left alone.

    Returns:
        The pointer `challenger` holds afterwards.
    """
    from training.io import serving

    with tempfile.TemporaryDirectory(prefix="test-bundle-") as scratch:
        plain = write_bundle(Path(scratch), **bundle)
        model_bytes = (plain / MODEL_FILE).read_bytes()
        manifest = decode_manifest((plain / MANIFEST_FILE).read_bytes())
    return serving.stage(folder, model_bytes, manifest).pointer


@pytest.fixture(scope="session")
def bundle_stager() -> Callable[..., Pointer]:
    """`stage_bundle` itself: `bundle_stager(folder, model_version="2", bias=1.0)`."""
    return stage_bundle


@pytest.fixture(scope="session")
def bundle_publisher() -> Callable[..., Pointer]:
    """`publish_bundle` itself: `bundle_publisher(folder, model_version="2", ...)`."""
    return publish_bundle


@pytest.fixture(scope="session")
def model_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid test bundle (version "1") in a session-wide directory; do not modify it."""
    return write_bundle(tmp_path_factory.mktemp("bundle"))


#: The size of the tests' forests: small trees, few rows per leaf, a fast learning rate.
SMALL_FOREST: dict[str, Any] = {"learning_rate": 0.1, "num_leaves": 15, "min_child_samples": 5}


@pytest.fixture(scope="session")
def fast_training() -> dict[str, dict[str, Any]]:
    """params.yaml sections that train and tune small forests in seconds on synthetic rows.

    The one home of the tests' fast training settings; the rest is the repository's params.yaml.
    Merge it (`tests/training/conftest.py` `merged`, `relocated`, which copy), never modify it.
    """
    return {
        "train": {
            "lightgbm": dict(SMALL_FOREST),
            "num_boost_round": 40,
            "early_stopping_rounds": 40,
            "use_tuned_params": False,
        },
        "tune": {"n_trials": 2, "num_boost_round": 20, "early_stopping_rounds": 10},
    }


#: A valid car (hand-written, every category known to the test vocabulary): tests/data/car.json.
SAMPLE_CAR: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "car.json").read_text("utf-8")
)


@pytest.fixture
def car_payload() -> dict[str, Any]:
    """A valid car as a JSON-ready dict (a fresh copy of tests/data/car.json)."""
    return dict(SAMPLE_CAR)


def wait_for(
    condition: Callable[[], bool], what: str, timeout: float = 20, poll_s: float = 0.1
) -> None:
    """Poll `condition` every `poll_s` until it holds; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll_s)
