"""`params.yaml`, DVC's single source of truth, loaded once into frozen typed objects.

Unknown keys and wrong types are errors that name the key, so a typo never falls back to a
default silently.
"""

from pathlib import Path

import msgspec
import yaml

from training.errors import PipelineError


class DataParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where raw files are read and generated artefacts are written."""

    raw_dir: str = "../shared/data"
    primary_file: str = "auto_ru_2020-09-09_moscow.csv.gz"
    market_2022_file: str = "auto_ru_2022-03_msk_spb_xelorr.parquet"
    interim_dir: str = "data/interim"
    features_dir: str = "data/features"
    reports_dir: str = "data/reports"


class IngestParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Validation bounds that are not part of the car contract (the target's plausible range)."""

    price_min: float = 10_000.0
    price_max: float = 100_000_000.0


class FeatureStoreParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The Feast feature repository and the feature view the training frame is read from."""

    repo_path: str = "feature_repo"
    feature_view: str = "car_features"


class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Everything in params.yaml. Later pipeline stages add their own sections here."""

    data: DataParams = DataParams()
    ingest: IngestParams = IngestParams()
    feature_store: FeatureStoreParams = FeatureStoreParams()


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file.

    Args:
        path: The YAML file.

    Returns:
        The frozen, validated parameters.

    Raises:
        PipelineError: The file is missing or unreadable, or a key is unknown or mistyped.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise PipelineError(f"{path}: cannot read params file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return msgspec.convert(raw, Params)
    except msgspec.ValidationError as exc:
        raise PipelineError(f"{path}: {exc}") from exc
