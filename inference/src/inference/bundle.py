"""The model bundle: validate `manifest.json` and `model.onnx`, open and warm the ORT session."""

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from msgspec import Meta

from shared_schema import CATEGORICAL_FIELDS, FIELD_NAMES, NUMERIC_FIELDS, SCHEMA_VERSION, Car

MODEL_FILE: Final = "model.onnx"
MANIFEST_FILE: Final = "manifest.json"
OUTPUT_NAME: Final = "price"

_INPUT_TYPES: Final = {
    **dict.fromkeys(CATEGORICAL_FIELDS, "tensor(string)"),
    **dict.fromkeys(NUMERIC_FIELDS, "tensor(float)"),
}

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


class ManifestInput(msgspec.Struct, frozen=True):
    """One graph input as the manifest lists it."""

    name: str
    type: str


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """The keys of `manifest.json` the server relies on; unknown keys are ignored.

    Attributes:
        sha256: Hex sha256 of the `model.onnx` bytes.
        schema_version: `shared_schema.SCHEMA_VERSION` the model was trained against; its
            major version must equal the server's.
        model_name: Registered model name.
        model_version: Version string reported with every prediction.
        created_at: ISO 8601 export time.
        inputs: Graph inputs, one per schema field.
        output: Name of the graph output, always "price".
        metrics: Evaluation metrics of the model.
        training_data_hash: Hash of the training data snapshot.
        parity_max_rel_diff: Largest relative ONNX-vs-training difference seen at export.
        categories: Known category strings per categorical field; None when not recorded.
    """

    sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    schema_version: Annotated[str, Meta(pattern=r"^\d+(\.\d+)*$")]
    model_name: Annotated[str, Meta(min_length=1)]
    model_version: Annotated[str, Meta(min_length=1)]
    created_at: str
    inputs: list[ManifestInput]
    output: str
    metrics: dict[str, Any]
    training_data_hash: str
    parity_max_rel_diff: float
    categories: dict[str, list[str]] | None = None


_manifest_decoder: Final = msgspec.json.Decoder(Manifest)


def schema_major(version: str) -> str:
    """The major part of a dotted version string."""
    return version.split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class BundleSignature:
    """What identifies the files on disk cheaply: sizes and modification times."""

    manifest: tuple[int, int]
    model: tuple[int, int]


def read_signature(model_dir: Path) -> BundleSignature | None:
    """Stat the bundle files; None when either is missing."""
    try:
        manifest = (model_dir / MANIFEST_FILE).stat()
        model = (model_dir / MODEL_FILE).stat()
    except OSError:  # missing, or unreadable while a deploy swaps it: no bundle for now
        return None
    return BundleSignature(
        manifest=(manifest.st_mtime_ns, manifest.st_size), model=(model.st_mtime_ns, model.st_size)
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
        self.vocabulary: dict[str, frozenset[str]] = {
            field: frozenset(values)
            for field, values in (manifest.categories or {}).items()
            if field in CATEGORICAL_FIELDS
        }

    def predict(self, cars: Sequence[Car]) -> npt.NDArray[np.float64]:
        """Prices in RUB for the cars, in order.

        Args:
            cars: Decoded cars, at least one.

        Returns:
            One float64 price per car.
        """
        feeds = build_feeds(cars)
        (prices,) = self.session.run([OUTPUT_NAME], feeds)
        return np.asarray(prices, dtype=np.float64).reshape(len(cars))

    def unknown_categories(self, cars: Sequence[Car]) -> dict[str, int]:
        """How many of the cars carry a category the model never saw, per field."""
        counts: dict[str, int] = {}
        for field, known in self.vocabulary.items():
            unknown = sum(1 for car in cars if getattr(car, field) not in known)
            if unknown:
                counts[field] = unknown
        return counts


def build_feeds(cars: Sequence[Car]) -> dict[str, npt.NDArray[Any]]:
    """Graph inputs straight from the structs: object arrays of str, float32 with NaN."""
    rows = len(cars)
    feeds: dict[str, npt.NDArray[Any]] = {}
    for name in CATEGORICAL_FIELDS:
        column = np.empty((rows, 1), dtype=object)
        column[:, 0] = [getattr(car, name) for car in cars]
        feeds[name] = column
    for name in NUMERIC_FIELDS:
        values = [getattr(car, name) for car in cars]
        feeds[name] = np.array(
            [math.nan if value is None else value for value in values], dtype=np.float32
        ).reshape(rows, 1)
    return feeds


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
    signature = read_signature(model_dir)
    try:
        manifest_bytes = (model_dir / MANIFEST_FILE).read_bytes()
        model_bytes = (model_dir / MODEL_FILE).read_bytes()
    except OSError as error:
        raise BundleError(f"cannot read bundle in {model_dir}: {error}") from error
    try:
        manifest = _manifest_decoder.decode(manifest_bytes)
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
    _check_graph(session)
    model = LoadedModel(session, manifest, manifest_raw, signature)
    _warm_up(model)
    return model


def _check_manifest(manifest: Manifest, model_sha256: str) -> None:
    if manifest.sha256 != model_sha256:
        raise BundleError(
            f"{MODEL_FILE} sha256 {model_sha256} does not match the manifest's {manifest.sha256}"
        )
    # Minor versions only add fields with defaults, so any model of the same major version
    # accepts what this server decodes; a major bump means the inputs changed.
    if schema_major(manifest.schema_version) != schema_major(SCHEMA_VERSION):
        raise BundleError(
            f"bundle schema version {manifest.schema_version} is incompatible with the "
            f"server's {SCHEMA_VERSION} (major versions differ)"
        )
    if manifest.output != OUTPUT_NAME:
        raise BundleError(f"manifest output is {manifest.output!r}, expected {OUTPUT_NAME!r}")
    names = {item.name for item in manifest.inputs}
    if names != set(FIELD_NAMES):
        raise BundleError(f"manifest inputs {sorted(names)} differ from the schema fields")


def _check_graph(session: ort.InferenceSession) -> None:
    inputs = {item.name: item.type for item in session.get_inputs()}
    if inputs != _INPUT_TYPES:
        raise BundleError(f"graph inputs {inputs} differ from the contract {_INPUT_TYPES}")
    outputs = {item.name for item in session.get_outputs()}
    if OUTPUT_NAME not in outputs:
        raise BundleError(f"graph has no output named {OUTPUT_NAME!r}: {sorted(outputs)}")


def _warm_up(model: LoadedModel) -> None:
    # Run the row counts the server will use so ORT allocates its buffers before traffic.
    for rows in (1, 8):
        try:
            prices = model.predict([WARMUP_CAR] * rows)
        except Exception as error:  # ORT raises its own untyped exception classes
            raise BundleError(f"warm-up prediction failed: {error}") from error
        if prices.shape != (rows,) or not np.all(np.isfinite(prices)):
            raise BundleError(f"warm-up prediction is not finite: {prices.tolist()}")
