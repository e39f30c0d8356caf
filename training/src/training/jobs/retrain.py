"""`car-train retrain`: a challenger trained on 2020 + new market rows, gated on the newest slice.

Not a DVC stage (Airflow runs it; the DVC pipeline keeps training on 2020 only). The newest
`retrain.holdout_fraction` of the new market's labelled listings is held out and written to
`paths.retrain_holdout`; the older ones join the 2020 train/val splits under recency weights.
The challenger goes through the pipeline's lifecycle (`training.lifecycle`: fit, export,
register, gate, promote, publish) under the retrain's gate policy
(`training.core.promotion.BetterOnNewMarket`): promoted only if it beats the champion on the
holdout and is not much worse on the 2020 test split; then `paths.serving_bundle` follows.
Policy and gate: training/README.md, "Retraining on new market data".
"""

import logging
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from training.config import Params
from training.core.dataset import frame_hash
from training.core.fitting import MarketRows, market_rows
from training.core.market_index import LevelRefusedError, check_jump, period_of
from training.core.promotion import BetterOnNewMarket, Scores
from training.core.retrain import RetrainRows, slice_key
from training.errors import PipelineError
from training.io import files, market_levels, registry, retrain_data, splits, tuned_params
from training.io.mlflow_service import MlflowService
from training.lifecycle.export import export, log_export
from training.lifecycle.fit import TrainingRows, fit
from training.lifecycle.promote import check_unseen, gate, promote
from training.lifecycle.publish import publish
from training.lifecycle.register import register
from training.records import DatasetSummary, MarketScores, RetrainRecord, SplitSummary

log = logging.getLogger(__name__)


def run(params: Params, service: MlflowService) -> RetrainRecord:
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
        labels, older, newest = retrain_data.read_slices(params)
        holdout_from = slice_key(newest.iloc[0])
        champion = registry.version_by_alias(service, name, registry.CHAMPION)
        check_unseen(champion, holdout_from)
        rows = retrain_data.assemble(params, labels, older, newest)
        retrain_data.write_slices(paths, rows)
        test_2020 = splits.read(paths.splits, "test")
        times = labels.set_index("listing_id")["event_timestamp"]
        market = challenger_market(params, service, champion, rows, times)
        version = _fit_export_register(
            params,
            service,
            rows,
            slice_key(older.iloc[-1]),
            market,
            champion_level=_served_level(service, champion),
        )
        challenger = registry.require_version(service, name, version)
        frames = {"holdout": rows.holdout, "test_2020": test_2020}
        test_period = retrain_data.one_period(times, test_2020, "the 2020 test split")
        result = gate(
            service,
            challenger,
            champion,
            frames,
            BetterOnNewMarket(settings.old_market_tolerance),
            periods={"test_2020": test_period},
        )
        promote(service, name, result)
        if result.decision.promote:
            publish(service, name, registry.CHAMPION, paths.serving_bundle)
        before = None if champion is None else str(champion.version)
        old = None
        if before is not None and result.champion_scores is not None:
            old = _market_scores(before, result.champion_scores)
        record = RetrainRecord(
            promote=result.decision.promote,
            reason=result.decision.reason,
            model_name=name,
            challenger=_market_scores(version, result.challenger_scores),
            champion=old,
            old_market_tolerance=settings.old_market_tolerance,
            champion_version_before=before,
            champion_version_after=version if result.decision.promote else before,
            holdout_rows=len(rows.holdout),
            holdout_from=holdout_from,
            holdout_to=slice_key(newest.iloc[-1]),
            test_2020_rows=len(test_2020),
            train_rows=len(rows.train),
            val_rows=len(rows.val),
            calibration_rows=len(rows.calibration),
            half_life_days=settings.half_life_days,
            market_date=market.market_date,
            test_2020_period=test_period,
        )
        files.write_json(record, paths.retrain_report)
    return record


def challenger_market(
    params: Params,
    service: MlflowService,
    champion: Any | None,
    rows: RetrainRows,
    times: pd.Series,
) -> MarketRows:
    """The retrain's periods, and the levels the champion's forest measures on its rows.

    The challenger's targets are deflated by these levels (every training row is on the
    market of its day); the fit then estimates the index again with its own forest.
    """
    fit_rows = pd.concat([rows.train, rows.val], ignore_index=True).drop_duplicates("listing_id")
    periods = period_of(times.reindex(fit_rows["listing_id"]).reset_index(drop=True))
    deflate_by = market_levels.champion_levels(service, champion, fit_rows, periods)
    log.info(
        "deflating by the champion's levels: %s",
        dict(zip(deflate_by.periods, np.round(deflate_by.levels, 4), strict=True)),
    )
    return market_rows(
        tuple(  # type: ignore[arg-type]
            times.reindex(f["listing_id"]) for f in (rows.train, rows.val, rows.calibration)
        ),
        deflate_by,
        params.market.window_days,
    )


def _served_level(service: MlflowService, champion: Any | None) -> float | None:
    """The champion's served log level (0: exported before the index); None: no champion."""
    if champion is None:
        return None
    _, manifest = registry.fetch_bundle(service, champion)
    return 0.0 if manifest.market is None else manifest.market.served_level


def _check_level(challenger_level: float, champion_level: float | None, max_ratio: float) -> None:
    """The refresh's sanity bound on the challenger's served level against the champion's.

    Raises:
        PipelineError: It moves prices by more than ×`max_ratio` (`market.max_level_ratio`),
            naming both levels.
    """
    if champion_level is None:
        return
    try:
        check_jump(champion_level, challenger_level, max_ratio)
    except LevelRefusedError as exc:
        raise PipelineError(
            f"retrain refused, nothing registered: the challenger serves level "
            f"{challenger_level:.4f}, the champion {champion_level:.4f}: {exc}"
        ) from exc


def _fit_export_register(
    params: Params,
    service: MlflowService,
    rows: RetrainRows,
    through: str,
    market: MarketRows,
    *,
    champion_level: float | None,
) -> str:
    """Fit the challenger under recency weights, export it on the holdout, register it.

    `through` (the newest row it trains on) is tagged on the run and the version, so a later
    retrain can check that this model never saw its holdout. Before the export, the
    challenger's served level must be within the refresh's sanity bound of the champion's
    (`champion_level`; None: no champion): labels in another unit move it by x1000.

    Returns:
        The challenger's registry version.

    Raises:
        PipelineError: The level is past the bound; nothing is registered.
    """
    paths, settings = params.paths, params.retrain
    train, val, calibration, holdout = rows.train, rows.val, rows.calibration, rows.holdout
    dataset = DatasetSummary(
        source=f"{params.split.source}+{settings.source}",
        train=SplitSummary(rows=len(train), sha256=frame_hash(train)),
        val=SplitSummary(rows=len(val), sha256=frame_hash(val)),
        test=SplitSummary(rows=len(holdout), sha256=frame_hash(holdout)),
    )
    lightgbm = msgspec.to_builtins(tuned_params.booster_params(params))
    with service.run("retrain") as tracked:
        tracked.set_tags({"stage": "retrain", registry.TRAINED_THROUGH_TAG: through})
        tracked.log_params(
            {
                **{f"retrain.{k}": v for k, v in msgspec.to_builtins(settings).items()},
                "train_rows": len(train),
                "val_rows": len(val),
                "calibration_rows": len(calibration),
            }
        )
        fitted = fit(
            tracked,
            TrainingRows(
                train=train,
                val=val,
                dataset=dataset,
                calibration=calibration,
                weights=(rows.train_weight, rows.val_weight),
                market=market,
            ),
            params.train,
            lightgbm,
            paths.retrain_pipeline,
        )
        _check_level(fitted.pipeline.served_level, champion_level, params.market.max_level_ratio)
        manifest = export(
            fitted.pipeline,
            holdout,
            paths.retrain_bundle,
            training_data_hash=dataset.train.sha256,
            params=params,
        )
        tracked.log_metrics(
            {
                "best_iteration": fitted.history.best_iteration,
                **{f"val_new_{k}": v for k, v in fitted.metrics.items()},
            }
        )
        log_export(tracked, paths.retrain_bundle, manifest, holdout)
    return register(
        service,
        params.registry.model_name,
        tracked.run_id,
        manifest,
        scored_on="holdout",
        trained_through=through,
    )


def _market_scores(version: str, scores: Scores) -> MarketScores:
    """A version's gate MAPEs as the retrain report records them."""
    return MarketScores(
        version=version,
        holdout_mape=scores["holdout"],
        test_2020_mape=scores["test_2020"],
    )
