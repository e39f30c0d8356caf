"""Pipeline files: written atomically, read with errors that name the file and its producer.

Each writer writes to a temporary file beside the target and renames it into place, and a
step removes its outputs first and again if it fails (`all_or_nothing`): a failing step never
leaves a partial output that looks valid.
"""

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pandas as pd

from training.errors import PipelineError

T = TypeVar("T")


@contextlib.contextmanager
def all_or_nothing(*paths: Path) -> Iterator[None]:
    """Remove a step's outputs first, and again if the step fails."""
    _remove(paths)
    try:
        yield
    except BaseException:
        _remove(paths)
        raise


def _remove(paths: tuple[Path, ...]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; move it onto `target` only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file private (0600); outputs are shared artefacts (the server's
        # non-root container user reads the bundle through a volume), so make them readable.
        tmp_path.chmod(0o644)
        tmp_path.replace(target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_parquet(frame: pd.DataFrame, target: Path) -> None:
    """Write a DataFrame as parquet, atomically, without the index."""
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False, engine="pyarrow", compression="zstd")


def write_csv(frame: pd.DataFrame, target: Path) -> None:
    """Write a table as CSV, atomically, without the index, floats rounded to 6 decimals."""
    with atomic_path(target) as tmp:
        frame.round(6).to_csv(tmp, index=False)


def write_json(obj: Any, target: Path) -> None:
    """Write an object (a record Struct, a dict) as indented JSON, atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(msgspec.json.format(msgspec.json.encode(obj), indent=2) + b"\n")


def write_jsonl(rows: list[Any], target: Path) -> None:
    """Write one JSON document per line, atomically (an empty file for no rows)."""
    encoder = msgspec.json.Encoder()
    with atomic_path(target) as tmp, tmp.open("wb") as fh:
        for row in rows:
            fh.write(encoder.encode(row) + b"\n")


def read_parquet(
    path: Path, what: str, producer: str, required: Iterable[str] = ()
) -> pd.DataFrame:
    """Read a pipeline output, with errors that name the file and what to run.

    Args:
        path: The parquet file.
        what: What it holds, for the message ("listings", "split").
        producer: The command that writes it ("car-train ingest").
        required: Columns it must have.

    Raises:
        PipelineError: The file is missing, not parquet, or lacks a column.
    """
    if not path.is_file():
        raise PipelineError(f"{path}: {what} not found; run `{producer}` first")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise PipelineError(f"{path}: cannot read as parquet: {exc}") from exc
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise PipelineError(f"{path}: missing column(s) {', '.join(missing)}")
    return frame


def read_record(path: Path, type_: type[T], producer: str) -> T:
    """Read a JSON record written by a step.

    Args:
        path: The JSON file.
        type_: Its record Struct (`training.records`).
        producer: The command that writes it ("car-train tune").

    Raises:
        PipelineError: The file is missing, not JSON, or does not match the record.
    """
    if not path.is_file():
        raise PipelineError(f"{path}: not found; run `{producer}` first")
    try:
        return msgspec.json.decode(path.read_bytes(), type=type_)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PipelineError(f"{path}: corrupt {type_.__name__}: {exc}") from exc


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
