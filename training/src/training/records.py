"""What the steps write and read besides data tables: one frozen Struct per record.

Each record is deterministic for the same inputs (no run ids, no timestamps): DVC hashes these
files into dvc.lock, so a second run must write the same bytes. Run ids and times live in
MLflow, which finds a model's run by content (`training.io.mlflow_service`).
"""

from typing import Literal

import msgspec

#: What a drift verdict asks for (`training.core.drift.Verdict.action`): nothing, a level
#: refresh (`car-train refresh-level`: the champion's forest at the newest market level), or
#: a retrain (a new forest). Here, light to import, for `car-train outcome` too.
Action = Literal["none", "refresh", "retrain"]


class _Record(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A record file: immutable, unknown keys rejected when read back."""


class SourceCounts(_Record, frozen=True):
    """What ingest did with one raw file; accepted + duplicates + quarantined = rows in."""

    file: str
    sha256: str
    rows_in: int
    accepted: int
    duplicates_collapsed: int
    quarantined: int
    #: quarantined / rows_in: what `ingest.max_quarantined_share` bounds.
    quarantined_share: float
    quarantined_by_reason: dict[str, int]

    def refusal(self, source: str, max_share: float) -> str | None:
        """Why this source must not feed training (too much quarantined), or None if it may."""
        if self.quarantined_share <= max_share:
            return None
        top = "; ".join(f"{r} ({n})" for r, n in list(self.quarantined_by_reason.items())[:3])
        return (
            f"source {source} ({self.file}): {self.quarantined} of {self.rows_in} rows quarantined"
            f" ({self.quarantined_share:.2%}), over ingest.max_quarantined_share"
            f" {max_share:.2%}; most common: {top}"
        )


class IngestReport(_Record, frozen=True):
    """`paths.ingest_report`: per-source counts and the listings file's hash."""

    sources: dict[str, SourceCounts]
    listings: int
    listings_sha256: str


class FeatureStoreReport(_Record, frozen=True):
    """`paths.feature_store_report`: the Feast training frame equals the feature table."""

    feature_view: str
    rows: int
    columns: list[str]
    equals_feature_table: bool


class SplitSummary(_Record, frozen=True):
    """One saved split: its row count and content hash (`training.core.dataset.frame_hash`)."""

    rows: int
    sha256: str


class DatasetSummary(_Record, frozen=True):
    """The splits' summary, saved beside them and carried into the trained model."""

    source: str
    train: SplitSummary
    val: SplitSummary
    test: SplitSummary

    def of(self, split: str) -> SplitSummary:
        """The summary of split `split` (train, val or test)."""
        summary: SplitSummary = getattr(self, split)
        return summary


class TunedParams(_Record, frozen=True):
    """`paths.tuned_params`: the search's best LightGBM parameters, which `train` overlays."""

    params: dict[str, float | int]
    val_mape: float
    trials: int
    tune_learning_rate: float


class TrainReport(_Record, frozen=True):
    """`paths.train_report`: validation metrics and the fingerprint MLflow's run is tagged with."""

    pipeline_sha256: str
    best_iteration: int
    val: dict[str, float]


class EvaluationReport(_Record, frozen=True):
    """`paths.test_metrics`: the test split's metrics (`training.core.metrics`)."""

    test: dict[str, float]


class Registration(_Record, frozen=True):
    """`paths.registration`: the registry version `register` made the challenger."""

    model_name: str
    version: str
    sha256: str


class PromotionRecord(_Record, frozen=True):
    """`paths.promotion`: the gate's decision and the champion before and after it."""

    promote: bool
    reason: str
    challenger_mape: float
    champion_mape: float | None
    tolerance: float
    model_name: str
    challenger_version: str
    champion_version_before: str | None
    champion_version_after: str | None
    test_rows: int


class MarketScores(_Record, frozen=True):
    """One registry version's MAPE on the new market's holdout and on the 2020 test split."""

    version: str
    holdout_mape: float
    test_2020_mape: float


class RetrainRecord(_Record, frozen=True):
    """`paths.retrain_report`: what the retrain trained on and the gate's comparison."""

    promote: bool
    reason: str
    model_name: str
    challenger: MarketScores
    champion: MarketScores | None
    old_market_tolerance: float
    champion_version_before: str | None
    champion_version_after: str | None
    holdout_rows: int
    holdout_from: str
    holdout_to: str
    test_2020_rows: int
    train_rows: int
    val_rows: int
    calibration_rows: int
    half_life_days: float
    market_date: str | None = None
    test_2020_period: str | None = None


class RefreshRecord(_Record, frozen=True):
    """`paths.refresh_report`: the level a refresh estimated, and the gate's comparison.

    `staged`: `refresh-level --stage` staged the challenger for live evidence, not promoted.
    """

    promote: bool
    reason: str
    model_name: str
    parent_version: str
    challenger: MarketScores
    champion: MarketScores
    old_market_tolerance: float
    champion_version_after: str
    market_date: str
    parent_level: float
    level: float
    window_rows: int
    window_brands: int
    holdout_rows: int
    holdout_from: str
    test_2020_period: str
    staged: bool = False


class ReferenceCV(_Record, frozen=True):
    """`paths.reference_cv`: our pipeline under the data README's reference protocol."""

    protocol: str
    rows: int
    mape_mean: float
    mape_std: float
    mape_folds: list[float]
    reference_mape: float
