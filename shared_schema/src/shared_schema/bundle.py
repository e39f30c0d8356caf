"""The serving bundle, defined once: its files, the graph's inputs and outputs, the manifest.

Training writes a bundle (`training.io.bundle`); the server, the drift job and the registry
steps read it with the one reader here (`read_verified`); everything that scores a graph feeds
it by the one rule of `shared_schema.feeds` (the graph's own inputs, typed as the manifest says).

A bundle is a directory with two files:

* `model.onnx`: one graph, fed the `Car` fields it was trained on: either one input per field
  (named as the field, shape [N, 1]) or grouped inputs, one [N, k] tensor per type whose
  columns are the fields the manifest lists (`ManifestInput.fields`); `tensor(string)` for
  categorical fields, `tensor(float)` with NaN for a missing number. Its output is `price`
  (float32 [N, 1], roubles); a bundle with an interval also has `price_lower` and
  `price_upper` (same shape, `price_lower <= price <= price_upper` on every row), described
  by the manifest's `interval`;
* `manifest.json`: a `Manifest`, written and read with msgspec.

Compatibility across schema versions (`SCHEMA_VERSION` is MAJOR.MINOR.PATCH):

* a bundle loads when its schema **major equals** the reader's and its **minor is not newer**.
  Minor versions only add `Car` fields with defaults, so a reader knows every input an older
  graph asks for and feeds exactly the graph's own inputs (`shared_schema.feeds`);
* a newer minor may ask for a field this reader cannot decode, and a different major means the
  fields changed meaning: both are refused with `IncompatibleBundleError`;
* the patch part never matters.
"""

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

from shared_schema.car import CATEGORICAL_FIELDS, FIELD_NAMES, SCHEMA_VERSION
from shared_schema.market import MarketIndex

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


class InvalidBundleError(ValueError):
    """A bundle `read_verified` refuses; the message names the file and the fault.

    The server and `car-train` both report exactly this message.
    """


class IncompleteBundleError(InvalidBundleError):
    """A bundle file missing, or a model whose sha256 is not the manifest's: not whole (yet)."""


class IncompatibleBundleError(InvalidBundleError):
    """A manifest this reader must not serve: other schema version, unknown input, bad output."""


class MissingInputError(ValueError):
    """Rows to feed a graph lack a column it takes as input (`shared_schema.feeds`), named."""


class ManifestInput(msgspec.Struct, frozen=True, omit_defaults=True):
    """One graph input: a `Car` field fed as [N, 1], or several fed side by side.

    A grouped input (`fields` set) is one tensor [N, len(fields)] whose columns are those
    fields in that order, all of `type`. onnxruntime binds each input of a call separately,
    about a microsecond each, so a graph fed two grouped inputs answers one car sooner than one
    fed sixteen (issue 21). Bundles with one input per field are read and fed as before.
    """

    name: str
    type: InputType
    #: The `Car` fields in the input's columns; empty for one field fed under its own name.
    fields: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """The fields fed in this input, in column order."""
        return self.fields or (self.name,)


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
        brand_models: Per known brand, the known model names listed with it in training, most
            listed first (the pricing page's dependent list); None when not recorded.
        market: The market index and the served level; None for a bundle exported before the
            index (it prices at the level of the market it was trained on, undated).
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
    brand_models: dict[str, list[str]] | None = None
    market: MarketIndex | None = None

    def outputs(self) -> tuple[str, ...]:
        """The graph outputs a reader runs: the price, then the interval's bounds if any."""
        if self.interval is None:
            return (self.output,)
        return (self.output, self.interval.lower_output, self.interval.upper_output)


_manifest_decoder: Final = msgspec.json.Decoder(Manifest)


def manifest_inputs(names: Iterable[str] = FIELD_NAMES) -> list[ManifestInput]:
    """The manifest's `inputs` for a graph fed the given fields (all of them by default)."""
    return [ManifestInput(name, INPUT_TYPES[name]) for name in names]


#: The grouped inputs' names, by the type of the fields they carry.
GROUPED_INPUT_NAMES: Final[Mapping[InputType, str]] = {"string": "categorical", "float": "numeric"}


def grouped_inputs(names: Iterable[str] = FIELD_NAMES) -> list[ManifestInput]:
    """The given fields as two grouped inputs: the strings, then the numbers (`ManifestInput`)."""
    fields = list(names)
    return [
        ManifestInput(group, kind, tuple(f for f in fields if INPUT_TYPES[f] == kind))
        for kind, group in GROUPED_INPUT_NAMES.items()
    ]


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
        if item.fields and item.name in INPUT_TYPES:
            raise IncompatibleBundleError(
                f"bundle input {item.name!r} groups fields {list(item.fields)} under a Car "
                "field's name"
            )
        for name in item.columns:
            expected = INPUT_TYPES.get(name)
            where = f"bundle input {item.name!r}" + (f" column {name!r}" if item.fields else "")
            if expected is None:
                raise IncompatibleBundleError(f"{where} is not a Car field")
            if item.type != expected:
                raise IncompatibleBundleError(
                    f"{where} is {item.type!r}, the schema says {expected!r}"
                )
    fed = [name for item in manifest.inputs for name in item.columns]
    if len(set(fed)) != len(fed):
        twice = sorted({name for name in fed if fed.count(name) > 1})
        raise IncompatibleBundleError(f"bundle inputs name a field twice: {twice}")
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


@dataclass(frozen=True, slots=True)
class VerifiedBundle:
    """A bundle's bytes as read once, checked by `read_verified`."""

    model_bytes: bytes
    manifest: Manifest
    #: `manifest.json` exactly as read (the server answers `/model` with it).
    manifest_bytes: bytes


def read_verified(directory: Path) -> VerifiedBundle:
    """Read a bundle directory and check it: the one reader of the server and of `car-train`.

    Each file is read once and the sha256 is taken of the model bytes returned, so the checked
    model is the used one even if the directory changes meanwhile. The checks, in order: both
    files readable, the manifest decodes, the model's sha256 is the manifest's, and the bundle
    is compatible with this reader (`check_compatible`).

    Raises:
        IncompleteBundleError: A file is missing, or the model is not the one the manifest
            hashes (a copy not whole, or not yet visible whole).
        InvalidBundleError: A file is unreadable, or the manifest does not decode.
        IncompatibleBundleError: The manifest is one this reader must not serve.
    """
    manifest_path, model_path = directory / MANIFEST_FILE, directory / MODEL_FILE
    manifest_bytes, model_bytes = (_read_file(path) for path in (manifest_path, model_path))
    try:
        manifest = decode_manifest(manifest_bytes)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise InvalidBundleError(f"{manifest_path}: invalid manifest: {error}") from error
    digest = hashlib.sha256(model_bytes).hexdigest()
    if digest != manifest.sha256:
        raise IncompleteBundleError(
            f"{model_path}: sha256 {digest} does not match the manifest's {manifest.sha256}"
        )
    try:
        check_compatible(manifest)
    except IncompatibleBundleError as error:
        raise IncompatibleBundleError(f"{manifest_path}: {error}") from error
    return VerifiedBundle(model_bytes, manifest, manifest_bytes)


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError) as error:
        raise IncompleteBundleError(f"{path}: bundle file not found") from error
    except OSError as error:
        raise InvalidBundleError(f"{path}: cannot read: {error.strerror or error}") from error


__all__ = [
    "GROUPED_INPUT_NAMES",
    "INPUT_TYPES",
    "LOWER_OUTPUT",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "ORT_TYPES",
    "PRICE_OUTPUT",
    "UPPER_OUTPUT",
    "IncompatibleBundleError",
    "IncompleteBundleError",
    "IntervalInfo",
    "InvalidBundleError",
    "Manifest",
    "ManifestInput",
    "MarketIndex",
    "MissingInputError",
    "VerifiedBundle",
    "check_compatible",
    "decode_manifest",
    "encode_manifest",
    "grouped_inputs",
    "manifest_inputs",
    "read_verified",
    "schema_version_refusal",
]
