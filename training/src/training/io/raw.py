"""Reading the raw auto.ru files, with errors that name the file and the column."""

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from training.errors import PipelineError


def read_csv(path: Path, required: Iterable[str], text_columns: Iterable[str] = ()) -> pd.DataFrame:
    """Read a (possibly gzipped) CSV and check it has the required columns.

    `text_columns` are read as strings whatever they look like, so a category such as
    n_owners "2" stays the string "2" when a file happens to hold only digits.

    Raises:
        PipelineError: The file is missing, unreadable, not a CSV, or lacks a column.
    """
    _exists(path)
    try:
        frame = pd.read_csv(path, low_memory=False, dtype=dict.fromkeys(text_columns, str))
    except (OSError, EOFError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise PipelineError(f"{path}: cannot read as CSV: {exc}") from exc
    except pd.errors.EmptyDataError as exc:
        raise PipelineError(f"{path}: file is empty") from exc
    _has_columns(path, frame, required)
    return frame


def read_parquet(path: Path, required: Iterable[str]) -> pd.DataFrame:
    """Read a parquet file and check it has the required columns.

    Raises:
        PipelineError: The file is missing, not parquet, or lacks a column.
    """
    _exists(path)
    try:
        frame: pd.DataFrame = pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException) as exc:
        raise PipelineError(f"{path}: cannot read as parquet: {exc}") from exc
    _has_columns(path, frame, required)
    return frame


def _exists(path: Path) -> None:
    if not path.is_file():
        raise PipelineError(
            f"{path}: input file not found (set data.raw_dir in params.yaml to the folder "
            "that holds the auto.ru files; see README 'Data')"
        )


def _has_columns(path: Path, frame: pd.DataFrame, required: Iterable[str]) -> None:
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise PipelineError(f"{path}: missing column(s) {', '.join(missing)}")
    if frame.empty:
        raise PipelineError(f"{path}: no rows")
