"""The one feed rule: raw field columns → the graph's feeds, for cars and DataFrame rows alike.

A graph is fed exactly its own inputs (`Manifest.inputs`; at export, before a manifest exists,
the inputs of the graph just built), each typed as its input says (`shared_schema.bundle`): a
reader feeds an older graph the fields it asks for and no other. The server feeds decoded cars
(`feeds_from_cars`); training turns a DataFrame's columns into the same columns first
(`training.io.onnx_scoring.frame_feeds`).
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from shared_schema.bundle import ManifestInput, MissingInputError
from shared_schema.car import FIELD_NAMES, Car


def build_feeds(
    inputs: Sequence[ManifestInput], columns: Mapping[str, Sequence[Any] | npt.NDArray[Any]]
) -> dict[str, npt.NDArray[Any]]:
    """The graph's feeds from raw columns, by the module docstring's rule.

    Args:
        inputs: The graph's inputs, in graph order.
        columns: One sequence per input at least, equal lengths: strings for `string` inputs,
            numbers (None or NaN for missing) for `float` ones. Other columns are ignored.

    Returns:
        `{input: array [N, 1]}`: object arrays of `str`, float32 arrays with NaN for missing.

    Raises:
        MissingInputError: A column the graph takes as input is not in `columns`.
    """
    feeds: dict[str, npt.NDArray[Any]] = {}
    for item in inputs:
        if item.name not in columns:
            raise MissingInputError(
                f"no column {item.name!r}: the graph takes it as a {item.type} input"
            )
        column = columns[item.name]
        if item.type == "string":
            feeds[item.name] = np.asarray(column, dtype=object).reshape(-1, 1)
        else:
            # float32 conversion turns None into NaN.
            feeds[item.name] = np.asarray(column, dtype=np.float32).reshape(-1, 1)
    return feeds


def car_columns(cars: Sequence[Car], names: Iterable[str] = FIELD_NAMES) -> dict[str, list[Any]]:
    """Decoded cars as field columns (None stays None: NaN once fed)."""
    return {name: [getattr(car, name) for car in cars] for name in names}


def feeds_from_cars(
    cars: Sequence[Car], inputs: Sequence[ManifestInput]
) -> dict[str, npt.NDArray[Any]]:
    """`build_feeds` for decoded cars (the server's path)."""
    return build_feeds(inputs, car_columns(cars, (item.name for item in inputs)))


__all__ = ["build_feeds", "car_columns", "feeds_from_cars"]
