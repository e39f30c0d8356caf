"""The model: validate a bundle (`shared_schema.bundle`), open and warm its ORT session, run it."""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from shared_schema import CATEGORICAL_FIELDS, Car
from shared_schema.bundle import (
    MANIFEST_FILE,
    MODEL_FILE,
    ORT_TYPES,
    IncompatibleBundleError,
    Manifest,
    check_compatible,
    decode_manifest,
    feeds_from_cars,
)

# A plausible car for the warm-up run: every value inside the schema's ranges.
WARMUP_CAR: Final = Car(
    brand="TOYOTA",
    model_name="CAMRY",
    body_type="седан",
    color="белый",
    fuel_type="бензин",
    model_year=2014,
    production_year=2016,
    n_doors=4,
    vehicle_transmission="автомат",
    engine_power=181.0,
    engine_displacement=2.5,
    mileage=90_000,
    drive_type="передний",
    n_owners="2",
    is_original_techpass=1,
    is_lefthand_drive=1,
)


class BundleError(Exception):
    """A bundle that must not be served: missing files, bad manifest, wrong graph, bad warm-up."""


@dataclass(frozen=True, slots=True)
class BundleSignature:
    """What identifies the files on disk cheaply: sizes and modification times."""

    manifest: tuple[int, int]
    model: tuple[int, int]


def read_signature(model_dir: Path) -> BundleSignature | None:
    """Stat the bundle files; None when either is missing (a deploy swapping it, say).

    Raises:
        OSError: The files are there but cannot be looked at (permissions, a symlink loop).
    """
    try:
        manifest = (model_dir / MANIFEST_FILE).stat()
        model = (model_dir / MODEL_FILE).stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return BundleSignature(
        manifest=(manifest.st_mtime_ns, manifest.st_size), model=(model.st_mtime_ns, model.st_size)
    )


class Prediction(msgspec.Struct, frozen=True):
    """One model run's result: prices in the cars' order, the interval if the model has one.

    Attributes:
        prices: Price in RUB per car.
        version: The model version that computed them.
        lower: Lower interval bound per car; None when the model has no interval.
        upper: Upper interval bound per car; None when the model has no interval.
    """

    prices: list[float]
    version: str
    lower: list[float] | None = None
    upper: list[float] | None = None

    def row(self, index: int) -> "Prediction":
        """The result for the car at `index` alone."""
        return Prediction(
            [self.prices[index]],
            self.version,
            None if self.lower is None else [self.lower[index]],
            None if self.upper is None else [self.upper[index]],
        )


class LoadedModel:
    """An open, validated, warmed ORT session with its manifest: immutable once built.

    Requests hold a reference to the instance they started on, so swapping the server's
    current model never disturbs a run in flight.
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        manifest: Manifest,
        manifest_raw: dict[str, Any],
        signature: BundleSignature | None,
    ) -> None:
        self.session = session
        self.manifest = manifest
        self.manifest_raw = manifest_raw
        self.signature = signature
        self.version = manifest.model_version
        self.input_names = tuple(item.name for item in manifest.inputs)
        self.output_names = list(manifest.outputs())
        self.vocabulary: dict[str, frozenset[str]] = {
            field: frozenset(values)
            for field, values in (manifest.categories or {}).items()
            if field in CATEGORICAL_FIELDS
        }

    def run(self, cars: Sequence[Car]) -> Prediction:
        """Prices (and the interval, if the model has one) for the cars, in order.

        Args:
            cars: Decoded cars, at least one.
        """
        outputs = self.session.run(self.output_names, feeds_from_cars(cars, self.input_names))
        prices, *bounds = (
            np.asarray(out, dtype=np.float64).reshape(-1).tolist() for out in outputs
        )
        if bounds:
            return Prediction(prices, self.version, bounds[0], bounds[1])
        return Prediction(prices, self.version)

    def predict(self, cars: Sequence[Car]) -> npt.NDArray[np.float64]:
        """Prices in RUB for the cars, in order (one float64 per car)."""
        return np.asarray(self.run(cars).prices, dtype=np.float64)

    def unknown_categories(self, cars: Sequence[Car]) -> dict[str, int]:
        """How many of the cars carry a category the model never saw, per field."""
        counts: dict[str, int] = {}
        for field, known in self.vocabulary.items():
            unknown = sum(1 for car in cars if getattr(car, field) not in known)
            if unknown:
                counts[field] = unknown
        return counts


def session_options(intra_op_threads: int) -> ort.SessionOptions:
    """ORT options for a server worker: explicit threads and no busy-waiting."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Spinning threads burn a core each between requests; with several workers per host
    # that steals CPU from the workers doing real work.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def load_bundle(model_dir: Path, intra_op_threads: int = 1) -> LoadedModel:
    """Read, validate, open and warm a bundle.

    The model bytes are hashed and handed to ORT from the same buffer, so the checked file
    is the served file even if the directory changes meanwhile.

    Args:
        model_dir: Directory with `model.onnx` and `manifest.json`.
        intra_op_threads: ORT intra-op threads.

    Returns:
        The model, ready to serve.

    Raises:
        BundleError: Anything that makes the bundle unfit to serve.
    """
    try:
        signature = read_signature(model_dir)
        manifest_bytes = (model_dir / MANIFEST_FILE).read_bytes()
        model_bytes = (model_dir / MODEL_FILE).read_bytes()
    except OSError as error:
        raise BundleError(f"cannot read bundle in {model_dir}: {error}") from error
    try:
        manifest = decode_manifest(manifest_bytes)
        manifest_raw: dict[str, Any] = msgspec.json.decode(manifest_bytes)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise BundleError(f"invalid {MANIFEST_FILE}: {error}") from error
    _check_manifest(manifest, hashlib.sha256(model_bytes).hexdigest())
    try:
        session = ort.InferenceSession(
            model_bytes,
            sess_options=session_options(intra_op_threads),
            providers=["CPUExecutionProvider"],
        )
    except Exception as error:  # ORT raises its own untyped exception classes
        raise BundleError(f"onnxruntime cannot open {MODEL_FILE}: {error}") from error
    _check_graph(session, manifest)
    model = LoadedModel(session, manifest, manifest_raw, signature)
    _warm_up(model)
    return model


def _check_manifest(manifest: Manifest, model_sha256: str) -> None:
    if manifest.sha256 != model_sha256:
        raise BundleError(
            f"{MODEL_FILE} sha256 {model_sha256} does not match the manifest's {manifest.sha256}"
        )
    try:
        check_compatible(manifest)
    except IncompatibleBundleError as error:
        raise BundleError(str(error)) from error


def _check_graph(session: ort.InferenceSession, manifest: Manifest) -> None:
    inputs = {item.name: item.type for item in session.get_inputs()}
    expected = {item.name: ORT_TYPES[item.type] for item in manifest.inputs}
    if inputs != expected:
        raise BundleError(f"graph inputs {inputs} differ from the manifest's {expected}")
    outputs = {item.name for item in session.get_outputs()}
    missing = [name for name in manifest.outputs() if name not in outputs]
    if missing:
        raise BundleError(f"graph has no output named {missing[0]!r}: {sorted(outputs)}")


def _warm_up(model: LoadedModel) -> None:
    # Run the row counts the server will use so ORT allocates its buffers before traffic.
    for rows in (1, 8):
        try:
            prices = model.predict([WARMUP_CAR] * rows)
        except Exception as error:  # ORT raises its own untyped exception classes
            raise BundleError(f"warm-up prediction failed: {error}") from error
        if prices.shape != (rows,) or not np.all(np.isfinite(prices)):
            raise BundleError(f"warm-up prediction is not finite: {prices.tolist()}")
