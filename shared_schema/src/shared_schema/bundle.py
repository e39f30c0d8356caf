"""The serving bundle, defined once: its files, the graph's inputs and outputs, the manifest.

Training writes a bundle (`training.io.bundle`), the server reads it (`inference`), tests and
benchmarks build and score it: all of them import the names, the `Manifest` Struct and the one
feed builder from here.

A bundle is a directory with two files:

* `model.onnx`: one graph, one input per `Car` field it was trained on (named as the field,
  shape [N, 1], `tensor(string)` for categorical fields, `tensor(float)` with NaN for a
  missing number), and the output `price` (float32 [N, 1], roubles); a bundle with an
  interval also has `price_lower` and `price_upper` (same shape, `price_lower <= price <=
  price_upper` on every row), described by the manifest's `interval`;
* `manifest.json`: a `Manifest`, written and read with msgspec.

Compatibility across schema versions (`SCHEMA_VERSION` is MAJOR.MINOR.PATCH):

* a bundle loads when its schema **major equals** the reader's and its **minor is not newer**.
  Minor versions only add `Car` fields with defaults, so a reader knows every input an older
  graph asks for and feeds exactly the graph's own inputs (`build_feeds(..., names=)`);
* a newer minor may ask for a field this reader cannot decode, and a different major means the
  fields changed meaning: both are refused with `IncompatibleBundleError`;
* the patch part never matters.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Final, Literal

import msgspec
import numpy as np
import numpy.typing as npt
from msgspec import Meta

from shared_schema.car import CATEGORICAL_FIELDS, FIELD_NAMES, SCHEMA_VERSION, Car

MODEL_FILE: Final = "model.onnx"
MANIFEST_FILE: Final = "manifest.json"
#: The graph's price output (roubles, float32 [N, 1]).
PRICE_OUTPUT: Final = "price"
#: The interval's bounds (roubles, float32 [N, 1]), present when `Manifest.interval` is set.
LOWER_OUTPUT: Final = "price_lower"
UPPER_OUTPUT: Final = "price_upper"

InputType = Literal["string", "float"]

#: The manifest's type of each field's graph input.
INPUT_TYPES: Final[Mapping[str, InputType]] = {
    name: "string" if name in CATEGORICAL_FIELDS else "float" for name in FIELD_NAMES
}
#: The same types as onnxruntime reports them (`NodeArg.type`).
ORT_TYPES: Final[Mapping[InputType, str]] = {"string": "tensor(string)", "float": "tensor(float)"}


class IncompatibleBundleError(ValueError):
    """A manifest this reader must not serve: other schema version, unknown input, bad output."""


class ManifestInput(msgspec.Struct, frozen=True):
    """One graph input: a `Car` field and how it is fed."""

    name: str
    type: InputType


class IntervalInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The price interval a bundle's graph outputs beside the price.

    Attributes:
        nominal: Intended coverage, e.g. 0.8 for the p10–p90 interval.
        lower_output: Graph output of the lower bound.
        upper_output: Graph output of the upper bound.
        calibration_rows: Rows the interval was calibrated on.
        coverage: Measured share of prices inside the interval on the parity rows.
        mean_relative_width: Mean (upper - lower) / price on the parity rows.
    """

    nominal: float
    lower_output: str = LOWER_OUTPUT
    upper_output: str = UPPER_OUTPUT
    calibration_rows: int
    coverage: float
    mean_relative_width: float


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """`manifest.json`: what the exporter records and every reader relies on.

    Unknown keys are ignored when reading, so a newer exporter may add keys.

    Attributes:
        sha256: Hex sha256 of the `model.onnx` bytes.
        schema_version: `SCHEMA_VERSION` the model was trained against (see the module's rule).
        model_name: Registered model name.
        model_version: Version string reported with every prediction.
        inputs: Graph inputs, in graph order.
        output: Name of the price output.
        metrics: Evaluation metrics on the rows the parity check ran on.
        training_data_hash: Hash of the training data snapshot.
        parity_max_rel_diff: Largest relative graph-vs-training price difference at export.
        parity_rows: Rows the parity check ran on.
        categories: Known category strings per categorical field; None when not recorded.
        created_at: ISO 8601 time of the export; None when the exporter leaves it out.
        registry_alias: The registry alias the bundle was fetched under; None for an export.
        interval: The price interval the graph outputs; None when it outputs the price only.
    """

    sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    schema_version: Annotated[str, Meta(pattern=r"^\d+\.\d+\.\d+$")]
    model_name: Annotated[str, Meta(min_length=1)]
    model_version: Annotated[str, Meta(min_length=1)]
    inputs: list[ManifestInput]
    output: str = PRICE_OUTPUT
    metrics: dict[str, float] = {}
    training_data_hash: str
    parity_max_rel_diff: float
    parity_rows: int = 0
    categories: dict[str, list[str]] | None = None
    created_at: str | None = None
    registry_alias: str | None = None
    interval: IntervalInfo | None = None

    def outputs(self) -> tuple[str, ...]:
        """The graph outputs a reader runs: the price, then the interval's bounds if any."""
        if self.interval is None:
            return (self.output,)
        return (self.output, self.interval.lower_output, self.interval.upper_output)


_manifest_decoder: Final = msgspec.json.Decoder(Manifest)


def manifest_inputs(names: Iterable[str] = FIELD_NAMES) -> list[ManifestInput]:
    """The manifest's `inputs` for a graph fed the given fields (all of them by default)."""
    return [ManifestInput(name, INPUT_TYPES[name]) for name in names]


def encode_manifest(manifest: Manifest) -> bytes:
    """`manifest.json`'s bytes: indented JSON, keys in the Struct's order, UTF-8 kept."""
    return msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n"


def decode_manifest(data: bytes) -> Manifest:
    """Parse `manifest.json` (no compatibility check: see `check_compatible`).

    Raises:
        msgspec.DecodeError: Not JSON.
        msgspec.ValidationError: A key is missing or has the wrong type; the message names it.
    """
    return _manifest_decoder.decode(data)


def _version(version: str) -> tuple[int, int]:
    major, minor, _ = version.split(".", 2)
    return int(major), int(minor)


def schema_version_refusal(version: str, reader_version: str = SCHEMA_VERSION) -> str | None:
    """Why data written under schema `version` is unreadable here, or None when it is readable.

    The module docstring's rule, for anything that carries a schema version: a bundle's graph,
    a prediction log record.

    Args:
        version: The schema version the data was written under (MAJOR.MINOR.PATCH).
        reader_version: The reader's schema version.

    Returns:
        None when the major versions are equal and `version`'s minor is not newer; otherwise
        the reason, as a sentence starting with "schema version".
    """
    major, minor = _version(version)
    reader_major, reader_minor = _version(reader_version)
    if major != reader_major:
        return (
            f"schema version {version} is incompatible with {reader_version}: major versions differ"
        )
    if minor > reader_minor:
        return (
            f"schema version {version} is newer than {reader_version}: "
            "it may carry fields this reader cannot decode"
        )
    return None


def check_compatible(manifest: Manifest, reader_version: str = SCHEMA_VERSION) -> None:
    """Refuse a bundle this reader cannot feed (the module docstring states the rule).

    Raises:
        IncompatibleBundleError: Naming the version, input or output at fault.
    """
    refusal = schema_version_refusal(manifest.schema_version, reader_version)
    if refusal is not None:
        raise IncompatibleBundleError(f"bundle {refusal}")
    for item in manifest.inputs:
        expected = INPUT_TYPES.get(item.name)
        if expected is None:
            raise IncompatibleBundleError(f"bundle input {item.name!r} is not a Car field")
        if item.type != expected:
            raise IncompatibleBundleError(
                f"bundle input {item.name!r} is {item.type!r}, the schema says {expected!r}"
            )
    if len({item.name for item in manifest.inputs}) != len(manifest.inputs):
        raise IncompatibleBundleError("bundle inputs name a field twice")
    if manifest.output != PRICE_OUTPUT:
        raise IncompatibleBundleError(
            f"bundle output is {manifest.output!r}, expected {PRICE_OUTPUT!r}"
        )
    interval = manifest.interval
    if interval is not None and (interval.lower_output, interval.upper_output) != (
        LOWER_OUTPUT,
        UPPER_OUTPUT,
    ):
        raise IncompatibleBundleError(
            f"bundle interval outputs are {interval.lower_output!r}/{interval.upper_output!r}, "
            f"expected {LOWER_OUTPUT!r}/{UPPER_OUTPUT!r}"
        )


def build_feeds(
    columns: Mapping[str, Sequence[Any] | npt.NDArray[Any]], names: Iterable[str] = FIELD_NAMES
) -> dict[str, npt.NDArray[Any]]:
    """The graph's feeds from raw field columns: the one conversion every caller uses.

    Args:
        columns: One sequence per field, equal lengths: strings for categorical fields, numbers
            (None or NaN for missing) for numeric ones.
        names: The graph's inputs (`Manifest.inputs`); all schema fields by default.

    Returns:
        `{field: array [N, 1]}`: object arrays of `str`, float32 arrays with NaN for missing.
    """
    feeds: dict[str, npt.NDArray[Any]] = {}
    for name in names:
        column = columns[name]
        if INPUT_TYPES[name] == "string":
            feeds[name] = np.asarray(column, dtype=object).reshape(-1, 1)
        else:
            # float32 conversion turns None into NaN.
            feeds[name] = np.asarray(column, dtype=np.float32).reshape(-1, 1)
    return feeds


def car_columns(cars: Sequence[Car], names: Iterable[str] = FIELD_NAMES) -> dict[str, list[Any]]:
    """Decoded cars as field columns for `build_feeds` (None stays None: NaN once fed)."""
    return {name: [getattr(car, name) for car in cars] for name in names}


def feeds_from_cars(
    cars: Sequence[Car], names: Iterable[str] = FIELD_NAMES
) -> dict[str, npt.NDArray[Any]]:
    """`build_feeds` for decoded cars (the server's path)."""
    names = tuple(names)
    return build_feeds(car_columns(cars, names), names)


__all__ = [
    "INPUT_TYPES",
    "LOWER_OUTPUT",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "ORT_TYPES",
    "PRICE_OUTPUT",
    "UPPER_OUTPUT",
    "IncompatibleBundleError",
    "IntervalInfo",
    "Manifest",
    "ManifestInput",
    "build_feeds",
    "car_columns",
    "check_compatible",
    "decode_manifest",
    "encode_manifest",
    "feeds_from_cars",
    "manifest_inputs",
    "schema_version_refusal",
]
