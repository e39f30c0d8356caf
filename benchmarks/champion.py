"""The model under test in every form the benchmarks use, and the held-out cars they send.

The bundle (what our server loads) is always there; the training package's pipeline (raw rows
in, RUB out, with its LightGBM booster: what the baseline calls) is optional. This module is
the benchmarks' only contact with `training`.
"""

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import pandas as pd

from shared_schema import FIELD_NAMES, Car
from shared_schema.bundle import Manifest, read_verified

NO_BOOSTER = "no LightGBM pipeline given (--pipeline)"


def load_pipeline(pipeline_dir: Path) -> Any:
    """The training package's pipeline: `.predict_price(frame)` in RUB, `.booster`."""
    from training.io import pipeline_files

    return pipeline_files.load(pipeline_dir)[0]


@dataclass(frozen=True)
class Champion:
    """One model: its bundle, and the training pipeline it was exported from (or None)."""

    bundle_dir: Path
    pipeline_dir: Path | None = None

    @cached_property
    def manifest(self) -> Manifest:
        return read_verified(self.bundle_dir).manifest

    @property
    def label(self) -> str:
        source = f"+ {self.pipeline_dir}" if self.pipeline_dir else f"only; {NO_BOOSTER}"
        return (
            f"{self.manifest.model_name} {self.manifest.model_version} ({self.bundle_dir} {source})"
        )

    @cached_property
    def pipeline(self) -> Any:
        if self.pipeline_dir is None:
            raise FileNotFoundError(NO_BOOSTER)
        return load_pipeline(self.pipeline_dir)

    @property
    def booster_file(self) -> Path:
        """The booster as a LightGBM text model (what lleaves compiles)."""
        from training.io import pipeline_files

        return Path(self.pipeline_dir or NO_BOOSTER) / pipeline_files.BOOSTER_FILE

    def graph_bytes(self, forest: str) -> bytes:
        """The pipeline's graph with its forest written as `forest` (`onnx_graph.ForestForm`)."""
        from training.io import onnx_graph

        graph = onnx_graph.build_graph(self.pipeline, forest=forest)  # type: ignore[arg-type]
        return bytes(graph.SerializeToString())

    def encode(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Raw rows as the booster's input matrix (the pipeline's own encoding)."""
        from training.core.encoding import feature_matrix

        matrix = feature_matrix(frame, self.pipeline.vocabulary)
        return np.ascontiguousarray(matrix.to_numpy(dtype=np.float64))


def resolve(bundle: Path | None, pipeline: Path | None, rows: Path | None) -> tuple[Champion, Path]:
    """The model and held-out rows given; what is not given, as `make train` leaves it.

    That is the served bundle with the training pipeline beside it, and the test split.
    """
    if bundle is not None and rows is not None:
        return Champion(bundle, pipeline), rows
    from inference.settings import Settings
    from shared_schema import serving_folder
    from training.config import load_params
    from training.io.splits import split_file

    params = load_params()
    if bundle is None:
        # The bundle the served folder's `current` pointer names (or the folder, if plain).
        served = serving_folder.resolve(Path(Settings().model_dir)).directory
        bundle, pipeline = served, Path(params.paths.trained_pipeline)
    return Champion(bundle, pipeline), rows or split_file(params.paths.splits, "test")


def held_out_rows(path: Path) -> pd.DataFrame:
    """The raw `Car` fields of the rows in a parquet file (a split, or a test's cars)."""
    return pd.read_parquet(path, columns=list(FIELD_NAMES))


def car_dicts(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as request bodies' dicts (None for a missing number), each a valid `Car`."""
    cars: list[dict[str, Any]] = json.loads(frame.to_json(orient="records", force_ascii=False))
    msgspec.convert(cars, list[Car])  # the server decodes strictly: fail here, not under load
    return cars


def request_bodies(frame: pd.DataFrame) -> list[bytes]:
    """Rows as `/predict` request bodies."""
    return [json.dumps(car, ensure_ascii=False).encode() for car in car_dicts(frame)]


def take(frame: pd.DataFrame, count: int) -> pd.DataFrame:
    """`count` rows, repeating the frame when it is smaller."""
    return pd.concat([frame] * -(-count // len(frame)), ignore_index=True).iloc[:count]
