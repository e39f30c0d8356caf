"""Saving and loading the trained pipeline (booster text + encoding) under `train.model_dir`."""

from pathlib import Path
from typing import Any

import lightgbm as lgb

from training.core.encoding import Vocabulary
from training.core.model import PricePipeline
from training.errors import PipelineError
from training.io import files

BOOSTER_FILE = "booster.txt"
PIPELINE_FILE = "pipeline.json"


def save(pipeline: PricePipeline, directory: Path, info: dict[str, Any]) -> None:
    """Write the booster and the encoding (plus `info`, e.g. params and data hashes)."""
    directory.mkdir(parents=True, exist_ok=True)
    with files.atomic_path(directory / BOOSTER_FILE) as tmp:
        pipeline.booster.save_model(str(tmp))
    files.write_json(
        {
            "vocabulary": pipeline.vocabulary.to_json(),
            "log_offset": pipeline.log_offset,
            **info,
        },
        directory / PIPELINE_FILE,
    )


def load(directory: Path) -> tuple[PricePipeline, dict[str, Any]]:
    """Read a pipeline written by `save`, with its info.

    Raises:
        PipelineError: A file is missing or corrupt (the message names it).
    """
    booster_path, info_path = directory / BOOSTER_FILE, directory / PIPELINE_FILE
    for path in (booster_path, info_path):
        if not path.is_file():
            raise PipelineError(f"{path}: trained model not found; run `car-train train` first")
    try:
        info: dict[str, Any] = files.read_json(info_path)
        vocabulary = Vocabulary.from_json(info.pop("vocabulary"))
        log_offset = float(info.pop("log_offset"))
        missing = [key for key in ("run_id", "data") if key not in info]
        if missing:
            raise KeyError(", ".join(missing))
    except Exception as exc:  # msgspec, KeyError, TypeError: all mean a corrupt file
        raise PipelineError(f"{info_path}: corrupt pipeline file: {exc!r}") from exc
    try:
        booster = lgb.Booster(model_file=str(booster_path))
    except lgb.basic.LightGBMError as exc:
        raise PipelineError(f"{booster_path}: corrupt LightGBM model: {exc}") from exc
    return PricePipeline(booster, vocabulary, log_offset), info
