"""`params.yaml`, DVC's single source of truth, loaded once into frozen typed objects.

Unknown keys and wrong types are errors that name the key, so a typo never falls back to a
default silently.
"""

from pathlib import Path
from typing import Annotated, Literal

import msgspec
import yaml
from msgspec import Meta

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


class SplitParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How the training source is split into train / validation / test listings."""

    source: str = "autoru_2020_moscow"
    seed: int = 42
    val_fraction: Annotated[float, Meta(gt=0.0, lt=0.5)] = 0.1
    test_fraction: Annotated[float, Meta(gt=0.0, lt=0.5)] = 0.1
    splits_dir: str = "data/splits"


class LightGBMParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """LightGBM booster parameters (the ones `tune` searches are overlaid from its output)."""

    objective: Literal["regression", "huber", "fair"] = "huber"
    alpha: Annotated[float, Meta(gt=0.0)] = 0.1
    learning_rate: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.05
    num_leaves: Annotated[int, Meta(ge=2, le=4096)] = 63
    min_child_samples: Annotated[int, Meta(ge=1)] = 10
    feature_fraction: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.5
    lambda_l2: Annotated[float, Meta(ge=0.0)] = 1.0
    cat_smooth: Annotated[float, Meta(ge=0.0)] = 10.0
    cat_l2: Annotated[float, Meta(ge=0.0)] = 10.0
    max_cat_to_onehot: Annotated[int, Meta(ge=1)] = 4
    max_cat_threshold: Annotated[int, Meta(ge=1)] = 64
    max_bin: Annotated[int, Meta(ge=2)] = 255
    num_threads: Annotated[int, Meta(ge=0)] = 1
    seed: int = 42


class TrainParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The training stage: booster, rounds, early stopping, category vocabulary."""

    lightgbm: LightGBMParams = LightGBMParams()
    num_boost_round: Annotated[int, Meta(ge=1)] = 5000
    early_stopping_rounds: Annotated[int, Meta(ge=1)] = 150
    log_every: Annotated[int, Meta(ge=1)] = 100
    # Categories seen fewer times in the training split share the explicit unknown code.
    min_category_count: Annotated[int, Meta(ge=1)] = 2
    # Overlay `tune`'s best parameters (tune_dir/best_params.json) on `lightgbm`.
    use_tuned_params: bool = True
    # Fit a constant price scale on the validation split (MAPE is minimised below the median).
    calibrate_scale: bool = True
    model_dir: str = "data/train"


class TuneParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The Optuna search: cheap by default, longer by raising `n_trials`."""

    n_trials: Annotated[int, Meta(ge=1)] = 6
    learning_rate: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.1
    num_boost_round: Annotated[int, Meta(ge=1)] = 1500
    early_stopping_rounds: Annotated[int, Meta(ge=1)] = 50
    seed: int = 7
    tune_dir: str = "data/tune"


class ExportParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The exported candidate bundle and its parity gate."""

    # The candidate of this run; what is served is `registry.serving_dir` (the champion).
    model_dir: str = "data/export"
    parity_tolerance: Annotated[float, Meta(gt=0.0)] = 1e-4
    opset: Annotated[int, Meta(ge=13)] = 17


class RegistryParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """MLflow tracking and the Model Registry (MLFLOW_TRACKING_URI overrides tracking_uri)."""

    tracking_uri: str = "sqlite:///data/mlflow/mlflow.db"
    artifact_dir: str = "data/mlflow/artifacts"
    experiment: str = "car-price"
    model_name: str = "car-price"
    # A challenger is promoted when its test MAPE <= champion's MAPE + this tolerance.
    promote_tolerance: Annotated[float, Meta(ge=0.0)] = 0.0
    # After the gate, `register` writes the champion's bundle here: what `make serve` serves.
    serving_dir: str = "data/model"


class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Everything in params.yaml. Later pipeline stages add their own sections here."""

    data: DataParams = DataParams()
    ingest: IngestParams = IngestParams()
    feature_store: FeatureStoreParams = FeatureStoreParams()
    split: SplitParams = SplitParams()
    train: TrainParams = TrainParams()
    tune: TuneParams = TuneParams()
    export: ExportParams = ExportParams()
    registry: RegistryParams = RegistryParams()


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
