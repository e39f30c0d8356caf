"""The trained pipeline on disk (`paths.trained_pipeline`): booster text + `TrainedModel` JSON.

Both files are deterministic for the same inputs, so their `fingerprint` identifies the model:
MLflow's run of the model is tagged with it (`training.io.mlflow_service`).
"""

import hashlib
from pathlib import Path
from typing import Any, Final

import lightgbm as lgb
import msgspec

from shared_schema.market import MarketIndex
from training.core.encoding import Vocabulary
from training.core.intervals import IntervalTable
from training.core.model import PricePipeline
from training.errors import PipelineError
from training.io import files
from training.records import DatasetSummary

BOOSTER_FILE: Final = "booster.txt"
PIPELINE_FILE: Final = "pipeline.json"
_PRODUCER: Final = "car-train train"


class TrainedModel(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """`PIPELINE_FILE`: the encoding, log offset, interval, market index and lineage."""

    vocabulary: dict[str, list[str]]
    # Recorded since the pricing page; a pipeline written before has none (then nor has its
    # bundle's manifest).
    brand_models: dict[str, list[str]] = {}
    log_offset: float
    interval: IntervalTable | None
    market: MarketIndex | None = None
    best_iteration: int
    lightgbm: dict[str, Any]
    val: dict[str, float]
    dataset: DatasetSummary


def save(pipeline: PricePipeline, directory: Path, record: TrainedModel) -> str:
    """Write the booster and its record (encoding, log offset, lineage).

    Returns:
        The written model's fingerprint.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with files.atomic_path(directory / BOOSTER_FILE) as tmp:
        pipeline.booster.save_model(str(tmp))
    files.write_json(record, directory / PIPELINE_FILE)
    return fingerprint(directory)


def load(directory: Path) -> tuple[PricePipeline, TrainedModel]:
    """Read a pipeline written by `save`, with its record.

    Raises:
        PipelineError: A file is missing or corrupt (the message names it).
    """
    booster_path, record_path = directory / BOOSTER_FILE, directory / PIPELINE_FILE
    if not booster_path.is_file():
        raise PipelineError(f"{booster_path}: trained model not found; run `{_PRODUCER}` first")
    record = files.read_record(record_path, TrainedModel, _PRODUCER)
    try:
        vocabulary = Vocabulary.from_json(record.vocabulary, record.brand_models)
    except KeyError as exc:
        raise PipelineError(f"{record_path}: vocabulary lacks field {exc}") from exc
    try:
        booster = lgb.Booster(model_file=str(booster_path))
    except lgb.basic.LightGBMError as exc:
        raise PipelineError(f"{booster_path}: corrupt LightGBM model: {exc}") from exc
    pipeline = PricePipeline(booster, vocabulary, record.log_offset, record.interval, record.market)
    return pipeline, record


def fingerprint(directory: Path) -> str:
    """Hex sha256 over the booster's and the record's bytes: the model's identity."""
    digest = hashlib.sha256()
    for name in (BOOSTER_FILE, PIPELINE_FILE):
        path = directory / name
        if not path.is_file():
            raise PipelineError(f"{path}: trained model not found; run `{_PRODUCER}` first")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
