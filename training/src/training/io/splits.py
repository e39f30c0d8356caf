"""The saved splits (`paths.splits`): one parquet file per split and their summary.

`split` writes them once; every later step reads the same rows through here, so every model
version is judged on the same test rows.
"""

from pathlib import Path
from typing import Final

import pandas as pd

from training.core.dataset import FRAME_COLUMNS, frame_hash, frame_problems
from training.core.splits import SPLITS
from training.errors import PipelineError
from training.io import files
from training.records import DatasetSummary, SplitSummary

SUMMARY_FILE: Final = "dataset.json"
_PRODUCER: Final = "car-train split"


def split_file(directory: Path, split: str) -> Path:
    """The parquet file of one split."""
    return directory / f"{split}.parquet"


def outputs(directory: Path) -> list[Path]:
    """Every file `write` writes into `directory`."""
    return [split_file(directory, s) for s in SPLITS] + [directory / SUMMARY_FILE]


def write(directory: Path, frames: dict[str, pd.DataFrame], source: str) -> DatasetSummary:
    """Save each split's frame (its `FRAME_COLUMNS`) and the summary of all of them.

    Args:
        directory: The splits folder.
        frames: One frame per name in `SPLITS`.
        source: The listings' source, recorded in the summary.

    Returns:
        The summary (also written to `dataset.json`).
    """
    parts: dict[str, SplitSummary] = {}
    for split in SPLITS:
        part = frames[split].loc[:, list(FRAME_COLUMNS)]
        files.write_parquet(part, split_file(directory, split))
        parts[split] = SplitSummary(rows=len(part), sha256=frame_hash(part))
    summary = DatasetSummary(source=source, **parts)
    files.write_json(summary, directory / SUMMARY_FILE)
    return summary


def read(directory: Path, split: str) -> pd.DataFrame:
    """Read one saved split and check it.

    Raises:
        PipelineError: The file is missing, not parquet, or fails the frame checks.
    """
    path = split_file(directory, split)
    frame = files.read_parquet(path, "split", _PRODUCER)
    problems = frame_problems(frame)
    if problems:
        raise PipelineError(f"{path}: " + "; ".join(problems))
    return frame


def read_summary(directory: Path) -> DatasetSummary:
    """Read the splits' summary.

    Raises:
        PipelineError: It is missing or corrupt.
    """
    return files.read_record(directory / SUMMARY_FILE, DatasetSummary, _PRODUCER)
