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
        columns: One sequence per field the inputs carry at least, equal lengths: strings for
            `string` inputs, numbers (None or NaN for missing) for `float` ones. Other columns
            are ignored.

    Returns:
        `{input: array [N, fields]}` (one field: [N, 1]): object arrays of `str`, float32
        arrays with NaN for missing.

    Raises:
        MissingInputError: A column the graph takes as input is not in `columns`.
    """
    feeds: dict[str, npt.NDArray[Any]] = {}
    for item in inputs:
        for name in item.columns:
            if name not in columns:
                where = f" (a column of input {item.name!r})" if item.fields else ""
                raise MissingInputError(
                    f"no column {name!r}: the graph takes it as a {item.type} input{where}"
                )
        if len(item.columns) == 1:
            column = columns[item.columns[0]]
            if item.type == "string":
                feeds[item.name] = np.asarray(column, dtype=object).reshape(-1, 1)
            else:
                # float32 conversion turns None into NaN.
                feeds[item.name] = np.asarray(column, dtype=np.float32).reshape(-1, 1)
            continue
        dtype = object if item.type == "string" else np.float32
        stacked = np.asarray([columns[name] for name in item.columns], dtype=dtype)
        feeds[item.name] = np.ascontiguousarray(stacked.T)
    return feeds


def car_columns(cars: Sequence[Car], names: Iterable[str] = FIELD_NAMES) -> dict[str, list[Any]]:
    """Decoded cars as field columns (None stays None: NaN once fed)."""
    return {name: [getattr(car, name) for car in cars] for name in names}


def feeds_from_cars(
    cars: Sequence[Car], inputs: Sequence[ManifestInput]
) -> dict[str, npt.NDArray[Any]]:
    """`build_feeds` for decoded cars (the server's path)."""
    fields = [name for item in inputs for name in item.columns]
    return build_feeds(inputs, car_columns(cars, fields))


__all__ = ["build_feeds", "car_columns", "feeds_from_cars"]
