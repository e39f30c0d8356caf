"""`car-train refresh-level`: the champion's forest at the newest labelled window's market level.

Not a DVC stage (Airflow runs it, like drift and retrain). The rows are the retrain's: the
newest `retrain.holdout_fraction` of the new market's labelled listings is the gate's holdout;
the window is the older listings of the `market.window_days` before the newest of them. The
level is the median, over the window, of log(price) minus the champion's market-relative log
price (`training.core.market_index`). The new bundle is the champion's graph with only its
`market_level` constant replaced (`training.io.onnx_graph.with_market_level`): the same forest,
a new level, its index extended by the window's period and its lineage (`parent_version`)
recorded. It goes through the lifecycle's register, gate (`BetterOnNewMarket`, the 2020 test
split at 2020's level) and publish, like a retrain.

With `--stage` the offline gate is a precondition, not the decision: a challenger it passes is
staged (`training.lifecycle.stage`: the serving folder's `challenger` pointer, which the server
scores in shadow or answers a canary share with) and not promoted or published; the champion
alias and `current` stay, and `car-train promote-live` decides on live evidence. A challenger
the offline gate refuses is refused as without `--stage`, and nothing is staged.

Refused, naming the reason, and never published: a window under `market.min_window_rows`
labelled rows or `market.min_window_brands` brands, a champion exported before the index, and
a level that moves prices by more than ×`market.max_level_ratio` (labels in another unit too).
"""

import logging
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from training.config import MarketParams, Params
from training.core.market_index import (
    LevelRefusedError,
    check_jump,
    extended,
    period_of,
    window_level,
    window_mask,
)
from training.core.promotion import BetterOnNewMarket, Scores
from training.core.retrain import rows_after, slice_key
from training.errors import PipelineError
from training.io import bundle, feast_store, files, market_levels, registry
from training.io import splits as split_files
from training.io.level_bundle import at_level
from training.io.mlflow_service import MlflowService
from training.io.retrain_data import one_period, read_slices
from training.lifecycle.export import log_export
from training.lifecycle.promote import GateResult, check_unseen, gate, promote
from training.lifecycle.publish import publish
from training.lifecycle.register import register
from training.lifecycle.stage import stage as stage_bundle
from training.records import MarketScores, RefreshRecord

log = logging.getLogger(__name__)

#: The registry version tag naming the version whose forest a refresh reused.
PARENT_TAG = "parent_version"
#: The registry version tag holding the offline gate's reason for a staged refresh.
OFFLINE_GATE_TAG = "offline_gate"


def run(params: Params, service: MlflowService, *, stage: bool = False) -> RefreshRecord:
    """Estimate the newest market level, bundle it with the champion's forest, gate, publish.

    Args:
        params: The pipeline's parameters.
        service: The MLflow store.
        stage: Stage a challenger the offline gate passes instead of promoting and publishing
            it (module docstring).

    Returns:
        The gate's record (also written to `paths.refresh_report`).

    Raises:
        PipelineError: No champion, a champion without an index, a window that cannot carry
            a level, a level past the sanity bound, or too few labelled listings. The
            champion alias and the serving folder are not moved then.
    """
    paths, market, name = params.paths, params.market, params.registry.model_name
    with files.all_or_nothing(paths.refresh_bundle, paths.refresh_report):
        labels, older, newest = read_slices(params)
        champion = registry.require_alias(service, name, registry.CHAMPION)
        parent_bytes, parent = registry.fetch_bundle(service, champion)
        if parent.market is None:
            raise PipelineError(
                f"champion version {champion.version} has no market index (exported before "
                "it): its level cannot be refreshed; run `car-train retrain`"
            )
        check_unseen(champion, slice_key(newest.iloc[0]))
        window_rows = _unseen_window(older, champion, market)
        entities = pd.concat([window_rows, newest], ignore_index=True)
        store = params.feature_store
        frame = feast_store.applied_training_frame(store.repo_path, entities, store.feature_view)
        window = frame.loc[frame["listing_id"].isin(window_rows["listing_id"])]
        holdout = frame.loc[frame["listing_id"].isin(newest["listing_id"])]
        residual = market_levels.relative_residual(parent_bytes, parent, window)
        try:
            level = window_level(
                residual,
                window["brand"],
                min_rows=market.min_window_rows,
                min_brands=market.min_window_brands,
            )
            check_jump(parent.market.served_level, level, market.max_level_ratio)
        except LevelRefusedError as exc:
            raise PipelineError(f"level refresh refused, nothing published: {exc}") from exc
        # The window: its first listing's day to the newest older listing's (the market date).
        window_from, market_date = (
            str(period_of(frame["event_timestamp"]).min())
            for frame in (window_rows, older.iloc[-1:])
        )
        # The version that trained the forest, through any chain of refreshes: the drift job
        # follows it to the rows that forest was calibrated on.
        forest_version = parent.market.parent_version or str(champion.version)
        index = extended(
            parent.market, (window_from, market_date), level, len(window), forest_version
        )
        model_bytes, manifest = at_level(
            parent_bytes, parent, level, index, holdout, tolerance=params.export.parity_tolerance
        )
        bundle.write(paths.refresh_bundle, model_bytes, manifest)
        through = slice_key(older.iloc[-1])
        with service.run("refresh-level") as tracked:
            tracked.set_tags(
                {
                    "stage": "refresh-level",
                    PARENT_TAG: str(champion.version),
                    registry.TRAINED_THROUGH_TAG: through,
                }
            )
            tracked.log_params({f"market.{k}": v for k, v in msgspec.to_builtins(market).items()})
            tracked.log_metrics({"market_level": level, "parent_level": parent.market.served_level})
            log_export(tracked, paths.refresh_bundle, manifest, holdout)
        version = register(
            service, name, tracked.run_id, manifest, scored_on="holdout", trained_through=through
        )
        service.client.set_model_version_tag(name, version, PARENT_TAG, str(champion.version))
        challenger = registry.require_version(service, name, version)
        test_2020 = split_files.read(paths.splits, "test")
        times = labels.set_index("listing_id")["event_timestamp"]
        test_period = one_period(times, test_2020, "the 2020 test split")
        tolerance = params.retrain.old_market_tolerance
        result = gate(
            service,
            challenger,
            champion,
            {"holdout": holdout, "test_2020": test_2020},
            BetterOnNewMarket(tolerance),
            periods={"test_2020": test_period},
        )
        staged = stage and result.decision.promote
        reason = _act(service, name, result, staged=staged, folder=paths.serving_bundle)
        promoted = result.decision.promote and not staged
        champion_scores = result.champion_scores or {}
        record = RefreshRecord(
            promote=promoted,
            staged=staged,
            reason=reason,
            model_name=name,
            parent_version=str(champion.version),
            challenger=_scores(version, result.challenger_scores),
            champion=_scores(str(champion.version), champion_scores),
            old_market_tolerance=tolerance,
            champion_version_after=version if promoted else str(champion.version),
            market_date=market_date,
            parent_level=parent.market.served_level,
            level=level,
            window_rows=len(window),
            window_brands=int(window["brand"].nunique()),
            holdout_rows=len(holdout),
            holdout_from=slice_key(newest.iloc[0]),
            test_2020_period=test_period,
        )
        files.write_json(record, paths.refresh_report)
    log.info(
        "market level %.4f (x%.4f against the parent's) for %s: %s",
        level,
        np.exp(level - parent.market.served_level),
        market_date,
        record.reason,
    )
    return record


def _act(
    service: MlflowService, name: str, result: GateResult, *, staged: bool, folder: Path
) -> str:
    """Stage the challenger, or record the gate's decision and publish a promotion; the reason.

    Staged, the gate's reason is tagged on the version (`OFFLINE_GATE_TAG`) and the champion
    alias stays: `promote-live` records the decision (`promotion`) when it makes it.
    """
    passed = result.decision.reason
    if not staged:
        promote(service, name, result)
        if result.decision.promote:
            publish(service, name, registry.CHAMPION, folder)
        return passed
    version = str(result.challenger.version)
    service.client.set_model_version_tag(name, version, OFFLINE_GATE_TAG, passed)
    pointer = stage_bundle(service, name, registry.CHALLENGER, folder).pointer
    log.info("staged version %s as %s's challenger", pointer.model_version, folder)
    return f"staged for live evidence (car-train promote-live), passed the offline gate: {passed}"


def _unseen_window(older: pd.DataFrame, champion: Any, market: MarketParams) -> pd.DataFrame:
    """The window's rows the champion never trained on.

    The window is the older listings of the `market.window_days` before the newest of them
    (`window_mask`, the fit's definition too); of those, the ones after the champion's
    trained-through tag. A level measured on rows the forest trained on (deflated by their
    own level) would find that level again, not the market's move since.

    Raises:
        PipelineError: Dropping the rows it trained on leaves fewer than
            `market.min_window_rows`, naming the tag and the counts.
    """
    newest_old = pd.Timestamp(older["event_timestamp"].max())
    window = older.loc[window_mask(older["event_timestamp"], market.window_days, newest_old)]
    min_rows = market.min_window_rows
    through = champion.tags.get(registry.TRAINED_THROUGH_TAG)
    unseen = rows_after(window, through)
    if len(unseen) < min(min_rows, len(window)):  # a small window alone: `window_level` says
        raise PipelineError(
            f"level refresh refused, nothing published: {len(unseen)} of the window's "
            f"{len(window)} labelled rows are newer than what champion version "
            f"{champion.version} trained on (up to {through}); a market level needs "
            f"{min_rows} (market.min_window_rows): wait for newer labelled listings"
        )
    return unseen


def _scores(version: str, scores: Scores) -> MarketScores:
    return MarketScores(
        version=version, holdout_mape=scores["holdout"], test_2020_mape=scores["test_2020"]
    )
