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

Refused, naming the reason, and never published: a window under `market.min_window_rows`
labelled rows or `market.min_window_brands` brands, a champion exported before the index, and
a level that moves prices by more than ×`market.max_level_ratio` (labels in another unit too).
"""

import hashlib
import logging
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from shared_schema.bundle import Manifest
from shared_schema.market import MarketIndex
from training.config import MarketParams, Params
from training.core.intervals import coverage, mean_relative_width
from training.core.market_index import (
    LevelRefusedError,
    check_jump,
    extended,
    period_of,
    window_level,
    window_mask,
)
from training.core.metrics import regression_metrics
from training.core.promotion import BetterOnNewMarket, Scores
from training.core.retrain import rows_after, slice_key
from training.errors import PipelineError
from training.io import bundle, feast_store, files, market_levels, onnx_scoring, registry
from training.io import splits as split_files
from training.io.mlflow_service import MlflowService
from training.io.onnx_graph import with_market_level
from training.io.retrain_data import one_period, read_slices
from training.lifecycle.export import log_export
from training.lifecycle.promote import check_unseen, gate, promote
from training.lifecycle.publish import publish
from training.lifecycle.register import register
from training.records import MarketScores, RefreshRecord

log = logging.getLogger(__name__)

#: The registry version tag naming the version whose forest a refresh reused.
PARENT_TAG = "parent_version"


def run(params: Params, service: MlflowService) -> RefreshRecord:
    """Estimate the newest market level, bundle it with the champion's forest, gate, publish.

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
        model_bytes = with_market_level(parent_bytes, level)
        worst = _check_scaled(
            parent_bytes,
            model_bytes,
            float(np.exp(level - parent.market.served_level)),
            onnx_scoring.frame_feeds(holdout, parent.inputs),
            tolerance=params.export.parity_tolerance,
        )
        manifest = _manifest(model_bytes, parent, index, holdout, worst)
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
        promote(service, name, result)
        if result.decision.promote:
            publish(service, name, registry.CHAMPION, paths.serving_bundle)
        champion_scores = result.champion_scores or {}
        record = RefreshRecord(
            promote=result.decision.promote,
            reason=result.decision.reason,
            model_name=name,
            parent_version=str(champion.version),
            challenger=_scores(version, result.challenger_scores),
            champion=_scores(str(champion.version), champion_scores),
            old_market_tolerance=tolerance,
            champion_version_after=version if result.decision.promote else str(champion.version),
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


def _manifest(
    model_bytes: bytes, parent: Manifest, index: MarketIndex, holdout: pd.DataFrame, parity: float
) -> Manifest:
    """The refreshed bundle's manifest: the parent's, with the new graph and index.

    Measured on the holdout, the rows the parity check ran on (as an export measures on its
    check rows): the metrics, the interval's coverage and width, `parity_rows`.
    """
    sha256 = hashlib.sha256(model_bytes).hexdigest()
    feeds = onnx_scoring.frame_feeds(holdout, parent.inputs)
    price = holdout["price"].to_numpy(np.float64)
    graph_price, *bounds = onnx_scoring.run_outputs(model_bytes, feeds, parent.outputs())
    interval = parent.interval
    if interval is not None:
        low, high = bounds
        interval = msgspec.structs.replace(
            interval,
            coverage=coverage(price, low, high),
            mean_relative_width=mean_relative_width(graph_price, low, high),
        )
    return msgspec.structs.replace(
        parent,
        sha256=sha256,
        model_version=f"dev-{sha256[:12]}",
        registry_alias=None,
        metrics=regression_metrics(price, graph_price),
        parity_max_rel_diff=parity,
        parity_rows=len(holdout),
        interval=interval,
        market=index,
    )


def _check_scaled(
    parent_bytes: bytes,
    model_bytes: bytes,
    ratio: float,
    feeds: dict[str, np.ndarray],
    *,
    tolerance: float,
) -> float:
    """The new graph's prices are the parent's times `ratio` (the level change) on `feeds`.

    Returns:
        The largest relative difference found (the manifest's `parity_max_rel_diff`).

    Raises:
        PipelineError: It is beyond `tolerance` (`export.parity_tolerance`).
    """
    before = onnx_scoring.run_graph(parent_bytes, feeds).astype(np.float64) * ratio
    after = onnx_scoring.run_graph(model_bytes, feeds).astype(np.float64)
    worst = float(np.max(np.abs(after - before) / before))
    if worst > tolerance:
        raise PipelineError(
            f"refreshed graph differs from the parent's x{ratio:.4f} by {worst:.3g} "
            f"(export.parity_tolerance {tolerance:g})"
        )
    return worst


def _scores(version: str, scores: Scores) -> MarketScores:
    return MarketScores(
        version=version, holdout_mape=scores["holdout"], test_2020_mape=scores["test_2020"]
    )
