"""`params.yaml`, DVC's single source of truth, loaded once into frozen typed objects.

Every value lives in params.yaml only: the Structs below declare types and ranges, never
defaults, so a missing key, an unknown key or a wrong type is an error that names the key.
"""

from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import yaml
from msgspec import Meta

from training.errors import PipelineError


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A params.yaml section: immutable, unknown keys rejected."""


class DataParams(_Section, frozen=True):
    """The raw auto.ru files the pipeline starts from (outside the repository)."""

    raw_dir: Path
    primary_file: str
    market_2022_file: str

    @property
    def primary_path(self) -> Path:
        """The 2020 Moscow file: the training data."""
        return self.raw_dir / self.primary_file

    @property
    def market_2022_path(self) -> Path:
        """The 2022 Moscow + St Petersburg scrape: new market data."""
        return self.raw_dir / self.market_2022_file


class PathParams(_Section, frozen=True):
    """Every file and folder a step writes: dvc.yaml names each as `${paths.<key>}`."""

    listings: Path
    quarantine: Path
    features: Path
    labels: Path
    splits: Path
    tuned_params: Path
    trained_pipeline: Path
    exported_bundle: Path
    serving_bundle: Path
    ingest_report: Path
    feature_store_report: Path
    train_report: Path
    test_metrics: Path
    error_by_brand: Path
    error_by_decile: Path
    plots: Path
    registration: Path
    promotion: Path
    reference_cv: Path
    drift: Path
    retrain_holdout: Path
    retrain_reference: Path
    retrain_pipeline: Path
    retrain_bundle: Path
    retrain_report: Path
    refresh_bundle: Path
    refresh_report: Path


class IngestParams(_Section, frozen=True):
    """Validation bounds that are not part of the car contract (the target's plausible range)."""

    price_min: Annotated[float, Meta(gt=0.0)]
    price_max: Annotated[float, Meta(gt=0.0)]
    max_quarantined_share: Annotated[float, Meta(ge=0.0, le=1.0)]


class FeatureStoreParams(_Section, frozen=True):
    """The Feast feature repository and the feature view the training frame is read from."""

    repo_path: Path
    feature_view: str


class SplitParams(_Section, frozen=True):
    """How the training source is split into train / validation / test listings."""

    source: str
    seed: int
    val_fraction: Annotated[float, Meta(gt=0.0, lt=0.5)]
    test_fraction: Annotated[float, Meta(gt=0.0, lt=0.5)]


class LightGBMParams(_Section, frozen=True):
    """LightGBM booster parameters (the ones `tune` searches are overlaid from its output)."""

    objective: Literal["regression", "huber", "fair"]
    alpha: Annotated[float, Meta(gt=0.0)]
    learning_rate: Annotated[float, Meta(gt=0.0, le=1.0)]
    num_leaves: Annotated[int, Meta(ge=2, le=4096)]
    min_child_samples: Annotated[int, Meta(ge=1)]
    feature_fraction: Annotated[float, Meta(gt=0.0, le=1.0)]
    lambda_l2: Annotated[float, Meta(ge=0.0)]
    cat_smooth: Annotated[float, Meta(ge=0.0)]
    cat_l2: Annotated[float, Meta(ge=0.0)]
    max_cat_to_onehot: Annotated[int, Meta(ge=1)]
    max_cat_threshold: Annotated[int, Meta(ge=1)]
    max_bin: Annotated[int, Meta(ge=2)]
    num_threads: Annotated[int, Meta(ge=0)]
    seed: int


class IntervalParams(_Section, frozen=True):
    """The conformal price interval exported beside the price (0 < nominal < 1)."""

    nominal: Annotated[float, Meta(gt=0.0, lt=1.0)]
    bins: Annotated[int, Meta(ge=1, le=100)]


class TrainParams(_Section, frozen=True):
    """The training stage: booster, rounds, early stopping, category vocabulary."""

    lightgbm: LightGBMParams
    num_boost_round: Annotated[int, Meta(ge=1)]
    early_stopping_rounds: Annotated[int, Meta(ge=1)]
    log_every: Annotated[int, Meta(ge=1)]
    # Categories seen fewer times in the training split share the explicit unknown code.
    min_category_count: Annotated[int, Meta(ge=1)]
    # Overlay `tune`'s best parameters (paths.tuned_params) on `lightgbm`.
    use_tuned_params: bool
    # Fit a constant price scale on the validation split (MAPE is minimised below the median).
    calibrate_scale: bool
    # The price interval, calibrated on the validation split (training.core.intervals).
    interval: IntervalParams


class TuneParams(_Section, frozen=True):
    """The Optuna search: cheap by default, longer by raising `n_trials`."""

    n_trials: Annotated[int, Meta(ge=1)]
    learning_rate: Annotated[float, Meta(gt=0.0, le=1.0)]
    num_boost_round: Annotated[int, Meta(ge=1)]
    early_stopping_rounds: Annotated[int, Meta(ge=1)]
    seed: int


class ExportParams(_Section, frozen=True):
    """The exported candidate bundle's parity gate and graph opset."""

    parity_tolerance: Annotated[float, Meta(gt=0.0)]
    opset: Annotated[int, Meta(ge=13)]


class RegistryParams(_Section, frozen=True):
    """MLflow tracking and the Model Registry (MLFLOW_TRACKING_URI overrides tracking_uri)."""

    tracking_uri: str
    artifact_dir: Path
    experiment: str
    model_name: str
    # A challenger is promoted when its test MAPE <= champion's MAPE + this tolerance.
    promote_tolerance: Annotated[float, Meta(ge=0.0)]


DriftMethod = Literal["jensen_shannon", "hellinger", "kolmogorov_smirnov", "wasserstein"]
CategoricalDriftMethod = Literal["jensen_shannon", "hellinger", "l_infinity"]
Share = Annotated[float, Meta(gt=0.0, le=1.0)]


class EstimatorParams(_Section, frozen=True):
    """The LightGBM loss model of NannyML's direct loss estimation (DLE)."""

    n_estimators: Annotated[int, Meta(ge=1)]
    learning_rate: Annotated[float, Meta(gt=0.0, le=1.0)]
    num_leaves: Annotated[int, Meta(ge=2, le=4096)]
    num_threads: Annotated[int, Meta(ge=0)]
    seed: int


class DriftParams(_Section, frozen=True):
    """`car-train drift`: chunking, drift methods and the retrain rules (training/README.md)."""

    chunk_size: Annotated[int, Meta(ge=10)]
    max_chunks: Annotated[int, Meta(ge=1)]
    continuous_method: DriftMethod
    categorical_method: CategoricalDriftMethod
    std_multiplier: Annotated[float, Meta(gt=0.0)]
    chunk_alert_share: Share
    drifting_fields_share: Share
    retrain_on_multivariate: bool
    max_mape_ratio: Annotated[float, Meta(gt=0.0)]
    min_labelled_rows: Annotated[int, Meta(ge=1)]
    error_alone: Literal["refresh", "retrain"]
    error_and_shape: Literal["refresh", "retrain"]
    estimator: EstimatorParams


class RetrainParams(_Section, frozen=True):
    """Retraining on new market data: holdout slice, recency weights and the promotion gate."""

    source: str
    holdout_fraction: Annotated[float, Meta(gt=0.0, lt=1.0)]
    min_holdout_rows: Annotated[int, Meta(ge=1)]
    val_fraction: Annotated[float, Meta(gt=0.0, lt=1.0)]
    seed: int
    half_life_days: Annotated[float, Meta(gt=0.0)]
    old_market_tolerance: Annotated[float, Meta(ge=0.0)]


class MarketParams(_Section, frozen=True):
    """`market`: the market index, the served level and its refresh (`car-train refresh-level`)."""

    window_days: Annotated[float, Meta(gt=0.0)]
    min_window_rows: Annotated[int, Meta(ge=1)]
    min_window_brands: Annotated[int, Meta(ge=1)]
    max_level_ratio: Annotated[float, Meta(gt=1.0)]


class CanaryStep(_Section, frozen=True):
    """One entry of `rollout.canary_steps`: a canary share, held at least `hold_minutes`."""

    share: Share
    hold_minutes: Annotated[float, Meta(ge=0.0)]


class RolloutParams(_Section, frozen=True):
    """The safe rollout: live evidence for the gate, rollback thresholds (training/README.md)."""

    min_labelled_rows: Annotated[int, Meta(ge=1)]
    confidence: Annotated[float, Meta(gt=0.0, lt=1.0)]
    bootstrap_resamples: Annotated[int, Meta(ge=100)]
    seed: int
    max_error_ratio: Share
    max_p95_ratio: Annotated[float, Meta(gt=1.0)]
    max_mape_ratio: Annotated[float, Meta(gt=1.0)]
    window: Annotated[str, Meta(pattern=r"^[0-9]+[smh]$")]
    #: An empty schedule is "no canary: shadow only" (`car-train watch` writes no share file).
    canary_steps: list[CanaryStep]
    min_canary_answers: Annotated[int, Meta(ge=1)]
    #: With no challenger staged, `watch` judges `current` against `previous` only this long
    #: after `current` was written (a publish): after it, nothing is on trial.
    post_promotion_minutes: Annotated[int, Meta(ge=1)]

    def __post_init__(self) -> None:
        """Refuse a canary schedule whose shares do not increase, naming the entry."""
        for index in range(1, len(self.canary_steps)):
            share, before = self.canary_steps[index].share, self.canary_steps[index - 1].share
            if share <= before:
                raise ValueError(
                    f"canary_steps[{index}]: share {share:g} is not above "
                    f"canary_steps[{index - 1}]'s {before:g}: a canary only steps up"
                )


class Params(_Section, frozen=True):
    """Everything in params.yaml; a new step adds its section here and in params.yaml."""

    data: DataParams
    paths: PathParams
    ingest: IngestParams
    feature_store: FeatureStoreParams
    split: SplitParams
    train: TrainParams
    tune: TuneParams
    export: ExportParams
    registry: RegistryParams
    drift: DriftParams
    retrain: RetrainParams
    market: MarketParams
    rollout: RolloutParams


def _decode_path(type_: type, value: Any) -> Any:
    """Decode a `Path` field: msgspec calls this for types it does not know."""
    if type_ is Path and isinstance(value, str):
        return Path(value)
    raise ValueError(f"expected a path string, got {type(value).__name__}")


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file.

    Args:
        path: The YAML file.

    Returns:
        The frozen, validated parameters.

    Raises:
        PipelineError: The file is missing or unreadable, or a key is missing, unknown or
            mistyped.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise PipelineError(f"{path}: cannot read params file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return msgspec.convert(raw, Params, dec_hook=_decode_path)
    except msgspec.ValidationError as exc:
        raise PipelineError(f"{path}: {exc}") from exc
