"""`car-train retrain`: a challenger trained on 2020 + new market rows, gated on the newest slice.

Not a DVC stage (Airflow runs it; the DVC pipeline keeps training on 2020 only). The newest
`retrain.holdout_fraction` of the new market's labelled listings is held out and written to
`paths.retrain_holdout`; the older ones join the 2020 train/val splits under recency weights.
The challenger is exported, registered, and promoted only if it beats the champion on the
holdout and is not much worse on the 2020 test split; then `paths.serving_bundle` follows.
Policy and gate: training/README.md, "Retraining on new market data".
"""

import logging
from typing import Any, Final

import msgspec
import numpy as np
import pandas as pd

from shared_schema import FIELD_NAMES
from training.config import Params
from training.core.dataset import frame_hash
from training.core.fitting import fit_pipeline
from training.core.intervals import MIN_BIN_ROWS
from training.core.metrics import regression_metrics
from training.core.promotion import decide_retrain
from training.core.retrain import (
    HOLDOUT_COLUMNS,
    RetrainRows,
    newest_slice,
    precedes,
    retrain_rows,
    slice_key,
)
from training.core.splits import assign_splits
from training.errors import PipelineError
from training.io import feast_store, files, onnx_scoring, registry, splits, tracking, tuned_params
from training.io.exporter import export_bundle
from training.io.pipeline_files import TrainedModel, save
from training.records import DatasetSummary, MarketScores, RetrainRecord, SplitSummary

log = logging.getLogger(__name__)

_LABELS: Final = ("event_timestamp", "listing_id", "price", "source")


def run(params: Params) -> RetrainRecord:
    """Retrain on 2020 + the older new-market rows, register, gate and maybe promote.

    Returns:
        The gate's record (also written to `paths.retrain_report`).

    Raises:
        PipelineError: No or too few new labelled listings, a champion trained on holdout
            rows, bad frames or a failed export. The champion alias is not moved then.
    """
    paths, settings, name = params.paths, params.retrain, params.registry.model_name
    slices = (paths.retrain_holdout, paths.retrain_reference)
    with files.all_or_nothing(
        *slices, paths.retrain_pipeline, paths.retrain_bundle, paths.retrain_report
    ):
        labels = files.read_parquet(paths.labels, "labels", "car-train features", _LABELS)
        older, newest = _slices(params, labels)
        holdout_from = slice_key(newest.iloc[0])
        client = tracking.client(params.registry)
        champion = registry.version_by_alias(client, name, registry.CHAMPION)
        _check_unseen(champion, holdout_from)
        draw = assign_splits(
            older["listing_id"],
            seed=settings.seed,
            val_fraction=settings.val_fraction,
            test_fraction=0.0,
        )
        val_ids = draw.loc[draw["split"] == "val", "listing_id"]
        if len(val_ids) < MIN_BIN_ROWS:
            raise PipelineError(
                f"{len(older)} older {settings.source} listings leave {len(val_ids)} validation "
                f"rows (retrain.val_fraction {settings.val_fraction:g}); the price interval "
                f"needs {MIN_BIN_ROWS}"
            )
        store = params.feature_store
        entities = pd.concat([older, newest], ignore_index=True)
        frame = feast_store.applied_training_frame(store.repo_path, entities, store.feature_view)
        try:
            rows = retrain_rows(
                frame,
                (splits.read(paths.splits, "train"), splits.read(paths.splits, "val")),
                holdout_ids=newest["listing_id"],
                val_ids=val_ids,
                times=labels.set_index("listing_id")["event_timestamp"],
                half_life_days=settings.half_life_days,
            )
        except ValueError as exc:
            raise PipelineError(f"{paths.splits} vs {paths.labels}: {exc}; re-run split") from exc
        files.write_parquet(rows.holdout.loc[:, list(HOLDOUT_COLUMNS)], paths.retrain_holdout)
        reference = rows.calibration.loc[:, ["listing_id", *FIELD_NAMES, "price"]]
        files.write_parquet(reference, paths.retrain_reference)
        test_2020 = splits.read(paths.splits, "test")
        version = _train_and_register(params, client, rows, slice_key(older.iloc[-1]))
        challenger = registry.require_version(client, name, version)
        new, old, promote, reason = _gate(
            params, client, challenger, champion, rows.holdout, test_2020
        )
        before = None if champion is None else str(champion.version)
        record = RetrainRecord(
            promote=promote,
            reason=reason,
            model_name=name,
            challenger=new,
            champion=old,
            old_market_tolerance=settings.old_market_tolerance,
            champion_version_before=before,
            champion_version_after=new.version if promote else before,
            holdout_rows=len(rows.holdout),
            holdout_from=holdout_from,
            holdout_to=slice_key(newest.iloc[-1]),
            test_2020_rows=len(test_2020),
            train_rows=len(rows.train),
            val_rows=len(rows.val),
            calibration_rows=len(rows.calibration),
            half_life_days=settings.half_life_days,
        )
        files.write_json(record, paths.retrain_report)
    log.info(
        "%s version %s: %s", "promoted" if record.promote else "refused", version, record.reason
    )
    return record


def _slices(params: Params, labels: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The new market's labelled listings: (older, newest), with the size checks."""
    settings = params.retrain
    new = labels.loc[
        labels["source"] == settings.source, ["listing_id", "event_timestamp", "price"]
    ]
    if new.empty:
        raise PipelineError(
            f"{params.paths.labels}: no labelled listings of source {settings.source!r} "
            "(retrain.source) to retrain on; run `car-train ingest` and `car-train features`"
        )
    older, newest = newest_slice(new, settings.holdout_fraction)
    if len(newest) < settings.min_holdout_rows or older.empty:
        raise PipelineError(
            f"{len(new)} labelled {settings.source} listings give a holdout of {len(newest)} "
            f"and {len(older)} older rows (retrain.holdout_fraction "
            f"{settings.holdout_fraction:g}); the gate needs retrain.min_holdout_rows "
            f"{settings.min_holdout_rows} and training needs older rows"
        )
    return older, newest


def _check_unseen(champion: Any, holdout_from: str) -> None:
    """Refuse a champion that trained on holdout rows: the comparison would favour it."""
    if champion is None:
        return
    through = champion.tags.get(registry.TRAINED_THROUGH_TAG)
    if through and not precedes(through, holdout_from):
        raise PipelineError(
            f"champion version {champion.version} trained on new-market rows up to {through}, "
            f"which reach into the holdout (from {holdout_from}); the gate needs newer "
            "labelled data or a smaller retrain.holdout_fraction"
        )


def _train_and_register(params: Params, client: Any, rows: RetrainRows, through: str) -> str:
    """Fit the challenger under recency weights, export it, register it; its version.

    `through` (the newest row it trains on) is tagged on the version, so a later retrain can
    check that this model never saw its holdout.
    """
    import mlflow

    paths, settings, name = params.paths, params.retrain, params.registry.model_name
    train, val, calibration, holdout = rows.train, rows.val, rows.calibration, rows.holdout
    lightgbm = msgspec.to_builtins(tuned_params.booster_params(params))
    dataset = DatasetSummary(
        source=f"{params.split.source}+{settings.source}",
        train=SplitSummary(rows=len(train), sha256=frame_hash(train)),
        val=SplitSummary(rows=len(val), sha256=frame_hash(val)),
        test=SplitSummary(rows=len(holdout), sha256=frame_hash(holdout)),
    )
    with tracking.run(params.registry, run_name="retrain") as active:
        mlflow.set_tags({"stage": "retrain", registry.TRAINED_THROUGH_TAG: through})
        mlflow.log_params(
            {
                **{f"retrain.{k}": v for k, v in msgspec.to_builtins(settings).items()},
                "train_rows": len(train),
                "val_rows": len(val),
                "calibration_rows": len(calibration),
            }
        )
        pipeline, history = fit_pipeline(
            train,
            val,
            params.train,
            lightgbm,
            calibration=calibration,
            weights=(rows.train_weight, rows.val_weight),
            on_round=lambda step, l1: mlflow.log_metric("val_l1_log", l1, step=step),
        )
        calibration_metrics = regression_metrics(
            calibration["price"].to_numpy(np.float64), pipeline.predict_price(calibration)
        )
        record = TrainedModel(
            vocabulary=pipeline.vocabulary.to_json(),
            log_offset=pipeline.log_offset,
            interval=pipeline.interval,
            best_iteration=history.best_iteration,
            lightgbm=lightgbm,
            val=calibration_metrics,
            dataset=dataset,
        )
        mlflow.set_tag(tracking.PIPELINE_TAG, save(pipeline, paths.retrain_pipeline, record))
        manifest = export_bundle(
            pipeline,
            holdout,
            paths.retrain_bundle,
            training_data_hash=dataset.train.sha256,
            model_name=name,
            parity_tolerance=params.export.parity_tolerance,
            opset=params.export.opset,
        )
        mlflow.log_metrics(
            {
                "best_iteration": history.best_iteration,
                "parity_max_rel_diff": manifest.parity_max_rel_diff,
                **{f"val_new_{k}": v for k, v in calibration_metrics.items()},
            }
        )
        mlflow.set_tag(tracking.MODEL_SHA_TAG, manifest.sha256)
        example = onnx_scoring.frame_feeds(holdout.head(3), manifest.inputs)
        registry.log_bundle(paths.retrain_bundle, example)
        run_id = str(active.info.run_id)
    version = registry.register(
        client,
        name,
        run_id,
        tags={
            "sha256": manifest.sha256,
            "holdout_mape": f"{manifest.metrics['mape']:.6f}",
            "training_data_hash": manifest.training_data_hash,
            "schema_version": manifest.schema_version,
            registry.TRAINED_THROUGH_TAG: through,
        },
    )
    client.set_registered_model_alias(name, registry.CHALLENGER, version)
    log.info("registered %s version %s as %s", name, version, registry.CHALLENGER)
    return version


def _gate(  # noqa: PLR0917 (a private helper of `run`, called once)
    params: Params,
    client: Any,
    challenger: Any,
    champion: Any | None,
    holdout: pd.DataFrame,
    test_2020: pd.DataFrame,
) -> tuple[MarketScores, MarketScores | None, bool, str]:
    """Score both registered graphs on the holdout and the 2020 test split; decide; promote.

    Returns:
        The challenger's and the champion's scores, whether it was promoted, and why.
    """
    name, tolerance = params.registry.model_name, params.retrain.old_market_tolerance
    frames = {"holdout": holdout, "test_2020": test_2020}

    def scores(version: Any) -> MarketScores:
        model_bytes, manifest = registry.fetch_bundle(version)
        mape = {
            key: regression_metrics(
                frame["price"].to_numpy(np.float64),
                onnx_scoring.run_graph(
                    model_bytes, onnx_scoring.frame_feeds(frame, manifest.inputs)
                ),
            )["mape"]
            for key, frame in frames.items()
        }
        return MarketScores(
            version=str(version.version),
            holdout_mape=mape["holdout"],
            test_2020_mape=mape["test_2020"],
        )

    new = scores(challenger)
    old = None if champion is None else scores(champion)
    promote, reason = decide_retrain(new, old, tolerance)
    verdict = "promoted" if promote else "refused"
    for key, value in (("promotion", verdict), ("promotion_reason", reason)):
        client.set_model_version_tag(name, new.version, key, value)
        client.set_tag(challenger.run_id, key, value)
    for who, figures in (("challenger", new), ("champion", old)):
        for key in ("holdout_mape", "test_2020_mape") if figures else ():
            client.log_metric(challenger.run_id, f"gate_{who}_{key}", getattr(figures, key))
    if promote:
        client.set_registered_model_alias(name, registry.CHAMPION, new.version)
        registry.publish(client, name, registry.CHAMPION, params.paths.serving_bundle)
    return new, old, promote, reason
