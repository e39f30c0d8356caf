"""The model: a verified bundle (`shared_schema.bundle`), its ORT session opened and warmed, run."""

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
    IncompleteBundleError,
    InvalidBundleError,
    Manifest,
    read_verified,
)
from shared_schema.feeds import feeds_from_cars
from shared_schema.serving_folder import CURRENT, PointerError, Resolved, resolve

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


#: A run of at least this many cars prices them grouped by brand, model and year of manufacture,
#: and answers in the cars' own order. onnxruntime's TreeEnsemble (1.32, one thread) walks the
#: forest one tree at a time over blocks of 128 rows (its source); like cars take like paths
#: through a tree, so its branches are predicted better. Measured through `LoadedModel.run` on
#: the test split's cars, one core, the sort included
#: (studies/forest_representation/results/layout-2026-12-07.md, "Row order"): 0.90x the time
#: per car at 1,000 cars and 0.76x at 7,312; at 256 cars 0.97x; at 16 to 128 cars the sort
#: costs about what it saves, or more (1.00-1.03x). The bound was read off those figures
#: (timings, not prices: the study checks a grouped run's prices equal the same run's as the
#: cars come). Over HTTP the gain did not show at 1,000 cars (`make bench` at 75e2a63, in
#: git there: 42,140 rows/s against 42,318 the run before, within its noise). Those figures
#: timed each batch again and again, which trains the branch predictor on small batches; the
#: study's distinct-rows run (each batch once per pass, `layout-2026-12-07-distinct-rows.md`)
#: is the one to read at 256 cars (studies/README.md, "Distinct rows").
ORDERED_RUN: Final = 256


def pricing_order(cars: Sequence[Car]) -> list[int] | None:
    """The order a run prices `cars` in (indices into `cars`), or None for their own order.

    Like cars together (brand, model, year of manufacture) from `ORDERED_RUN` cars up; fewer
    cars are priced as they come.
    """
    if len(cars) < ORDERED_RUN:
        return None
    return sorted(
        range(len(cars)),
        key=lambda index: (
            cars[index].brand,
            cars[index].model_name,
            cars[index].production_year,
        ),
    )


class BundleError(Exception):
    """A bundle that must not be served: missing files, bad manifest, wrong graph, bad warm-up."""


class PendingBundleError(BundleError):
    """A bundle a pointer names, not whole yet as seen from here: missing, or a hash disagreeing.

    Only the pointer layout has it: a named bundle never changes once renamed into place, so a
    disagreement can only be a view that has not caught up. On a network filesystem a reader
    can see a new pointer before the bundle it names, or a manifest before its model, for as
    long as its attribute cache lasts: the holder treats this as pending for
    `Settings.reload_grace_s`, and only then as a failure.
    """


Stat = tuple[int, int]


@dataclass(frozen=True, slots=True)
class BundleSignature:
    """What identifies the served files cheaply: the pointer, the bundle dir, sizes and times.

    `manifest` and `model` are None when a pointer names a bundle whose files are not there.
    """

    pointer: Stat | None
    directory: str
    manifest: Stat | None
    model: Stat | None


def _stat(path: Path) -> Stat | None:
    try:
        result = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (result.st_mtime_ns, result.st_size)


def signature_of(model_dir: Path, resolved: Resolved) -> BundleSignature | None:
    """The signature of what `resolved` names; None when nothing is there to load.

    A plain bundle dir with a file missing (a deploy swapping it, say) is nothing to load; a
    pointer naming missing files is something to load (and to report, once pending too long).
    """
    pointer = None if resolved.pointer is None else _stat(model_dir / CURRENT)
    manifest = _stat(resolved.directory / MANIFEST_FILE)
    model = _stat(resolved.directory / MODEL_FILE)
    if resolved.pointer is None and (manifest is None or model is None):
        return None
    return BundleSignature(pointer, str(resolved.directory), manifest, model)


def read_signature(model_dir: Path) -> BundleSignature | None:
    """Stat what the model dir serves (`shared_schema.serving_folder.resolve`).

    Raises:
        OSError: The files are there but cannot be looked at (permissions, a symlink loop).
        PointerError: The `current` pointer is there but unreadable as a pointer.
    """
    return signature_of(model_dir, resolve(model_dir))


class Prediction(msgspec.Struct, frozen=True):
    """One model run's result: prices in the cars' order, the interval if the model has one.

    Attributes:
        prices: Price in RUB per car.
        version: The model version that computed them.
        lower: Lower interval bound per car; None when the model has no interval.
        upper: Upper interval bound per car; None when the model has no interval.
        market_date: The market date the model priced for (`Manifest.market`); None for a
            bundle without a market index (priced at its training market, undated).
    """

    prices: list[float]
    version: str
    lower: list[float] | None = None
    upper: list[float] | None = None
    market_date: str | None = None

    def row(self, index: int) -> "Prediction":
        """The result for the car at `index` alone."""
        return self.rows(index, index + 1)

    def rows(self, start: int, stop: int) -> "Prediction":
        """The result for the cars from `start` up to (not including) `stop`."""
        return Prediction(
            self.prices[start:stop],
            self.version,
            None if self.lower is None else self.lower[start:stop],
            None if self.upper is None else self.upper[start:stop],
            self.market_date,
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
        self.market_date = None if manifest.market is None else manifest.market.market_date
        self.output_names = list(manifest.outputs())
        self.vocabulary: dict[str, frozenset[str]] = {
            field: frozenset(values)
            for field, values in (manifest.categories or {}).items()
            if field in CATEGORICAL_FIELDS
        }

    def run(self, cars: Sequence[Car]) -> Prediction:
        """Prices (and the interval, if the model has one) for the cars, in their order.

        A long run is priced in `pricing_order` and its results put back in the cars' order.

        Args:
            cars: Decoded cars, at least one.
        """
        order = pricing_order(cars)
        priced = cars if order is None else [cars[index] for index in order]
        outputs = self.session.run(self.output_names, feeds_from_cars(priced, self.manifest.inputs))
        columns = [np.asarray(out, dtype=np.float64).reshape(-1) for out in outputs]
        if order is not None:  # back to the cars' own order: each car's place in `order`
            places = np.argsort(order)
            columns = [column[places] for column in columns]
        prices, *bounds = (column.tolist() for column in columns)
        if bounds:
            return Prediction(prices, self.version, bounds[0], bounds[1], self.market_date)
        return Prediction(prices, self.version, market_date=self.market_date)

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
    """Read and verify a bundle (`shared_schema.bundle.read_verified`), then open and warm it.

    ORT opens the very bytes that were verified, so the checked file is the served file even
    if the directory changes meanwhile.

    Args:
        model_dir: A serving folder (the bundle its `current` pointer names) or a plain
            bundle directory with `model.onnx` and `manifest.json`.
        intra_op_threads: ORT intra-op threads.

    Returns:
        The model, ready to serve.

    Raises:
        PendingBundleError: The bundle is not whole as seen from here (it may be yet).
        BundleError: Anything else that makes the bundle unfit to serve; a bundle that
            `read_verified` refuses carries its message unchanged (as `car-train` reports it).
    """
    try:
        resolved = resolve(model_dir)
    except PointerError as error:
        raise BundleError(str(error)) from error
    except OSError as error:
        raise BundleError(f"cannot read the pointer in {model_dir}: {error}") from error
    directory, pointer = resolved.directory, resolved.pointer
    try:
        signature = signature_of(model_dir, resolved)
    except OSError as error:
        raise BundleError(f"cannot read bundle in {directory}: {error}") from error
    try:
        bundle = read_verified(directory)
    except InvalidBundleError as error:
        if pointer is not None and isinstance(error, IncompleteBundleError):
            # A named bundle is immutable once renamed into place: a missing file or a model
            # the manifest does not hash is a view that has not caught up yet. In a plain dir
            # it is a copy caught half-way (a failure).
            raise PendingBundleError(
                f"pointer {model_dir / CURRENT} names {pointer.bundle} (version "
                f"{pointer.model_version}), not whole here (yet): {error}"
            ) from error
        raise BundleError(str(error)) from error
    manifest = bundle.manifest
    if pointer is not None and pointer.sha256 != manifest.sha256:
        raise PendingBundleError(
            f"pointer {model_dir / CURRENT} expects model sha256 {pointer.sha256}, "
            f"{directory / MANIFEST_FILE} says {manifest.sha256}"
        )
    try:
        session = ort.InferenceSession(
            bundle.model_bytes,
            sess_options=session_options(intra_op_threads),
            providers=["CPUExecutionProvider"],
        )
    except Exception as error:  # ORT raises its own untyped exception classes
        raise BundleError(f"onnxruntime cannot open {MODEL_FILE}: {error}") from error
    _check_graph(session, manifest)
    manifest_raw: dict[str, Any] = msgspec.json.decode(bundle.manifest_bytes)
    model = LoadedModel(session, manifest, manifest_raw, signature)
    _warm_up(model)
    return model


def _check_graph(session: ort.InferenceSession, manifest: Manifest) -> None:
    inputs = {item.name: item.type for item in session.get_inputs()}
    expected = {item.name: ORT_TYPES[item.type] for item in manifest.inputs}
    if inputs != expected:
        raise BundleError(f"graph inputs {inputs} differ from the manifest's {expected}")
    columns = {item.name: item.columns for item in manifest.inputs}
    for item in session.get_inputs():
        width = item.shape[1] if len(item.shape) == 2 else None
        if isinstance(width, int) and width != len(columns[item.name]):
            raise BundleError(
                f"graph input {item.name!r} has {width} columns, the manifest feeds it "
                f"{len(columns[item.name])}: {list(columns[item.name])}"
            )
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
