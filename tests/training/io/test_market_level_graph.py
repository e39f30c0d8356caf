"""The market level in the graph: one constant, learned from deflated prices, and refreshable."""

import math
from pathlib import Path

import msgspec
import numpy as np
import onnx
import pandas as pd
import pytest

from shared_schema.bundle import LOWER_OUTPUT, PRICE_OUTPUT, UPPER_OUTPUT, read_verified
from training.config import TrainParams, load_params
from training.core.fitting import fit_pipeline, market_rows
from training.core.market_index import Levels
from training.core.model import PricePipeline
from training.errors import PipelineError
from training.io import onnx_graph, onnx_scoring
from training.io.exporter import export_bundle

from ..synthetic import SMALL_LGBM, synthetic_cars

#: The synthetic markets: 2020 prices, then two 2022 days at these multiples of them.
_DAYS = {"2020-09-09": 1.0, "2022-03-28": 1.6, "2022-04-01": 1.7}


def _market(n: int, seed: int, day: str) -> tuple[pd.DataFrame, pd.Series]:
    cars = synthetic_cars(n, seed=seed)
    cars["price"] = (cars["price"] * _DAYS[day]).round(-3)
    return cars, pd.Series(pd.Timestamp(f"{day}T12:00:00Z"), index=range(n))


@pytest.fixture(scope="module")
def indexed() -> PricePipeline:
    """A pipeline fitted on three days' markets, deflated by the champion-like true levels."""
    frames = [_market(900, seed, day) for seed, day in enumerate(_DAYS)]
    train = pd.concat([f.iloc[:600] for f, _ in frames], ignore_index=True)
    val = pd.concat([f.iloc[600:750] for f, _ in frames], ignore_index=True)
    calibration = pd.concat([f.iloc[750:] for f, _ in frames[1:]], ignore_index=True)
    times = tuple(
        pd.concat([t.iloc[part] for _, t in chosen], ignore_index=True)
        for part, chosen in (
            (slice(0, 600), frames),
            (slice(600, 750), frames),
            (slice(750, 900), frames[1:]),
        )
    )
    # What a champion priced for 2020 measures: each day's level against 2020's.
    deflate_by = Levels(tuple(_DAYS), tuple(math.log(r) for r in _DAYS.values()), (1, 1, 1))
    settings: TrainParams = load_params(Path("params.yaml")).train
    settings = msgspec.structs.replace(
        settings,
        num_boost_round=60,
        early_stopping_rounds=60,
        interval=msgspec.structs.replace(settings.interval, bins=2),
    )
    pipeline, _ = fit_pipeline(
        train,
        val,
        settings,
        SMALL_LGBM,
        calibration=calibration,
        market=market_rows(times, deflate_by, 7.0),  # type: ignore[arg-type]
    )
    return pipeline


@pytest.fixture(scope="module")
def cars() -> pd.DataFrame:
    """Unseen 2020-like cars to price."""
    return synthetic_cars(300, seed=9)


def test_the_fit_finds_each_days_level_and_serves_the_newest(indexed: PricePipeline) -> None:
    """The index re-estimated by the fitted forest: each day's ratio to 2020 within 3 %."""
    market = indexed.market
    assert market is not None
    assert market.periods == list(_DAYS)
    for day, ratio in _DAYS.items():
        found = math.exp(market.level_of(day) - market.level_of("2020-09-09"))
        assert found == pytest.approx(ratio, rel=0.03), day
    # The served window is the last 7 days: both 2022 days' calibration rows.
    assert market.market_date == "2022-04-01"
    assert market.served_rows == 300
    assert market.window_from == "2022-03-28"  # the served window: both 2022 days' rows
    served = math.exp(market.served_level - market.level_of("2020-09-09"))
    assert 1.6 * 0.97 < served < 1.7 * 1.03


def test_the_graph_serves_one_level_and_records_the_index(
    indexed: PricePipeline, cars: pd.DataFrame, tmp_path: Path
) -> None:
    """Parity at the served level; the manifest carries the index and the market date."""
    manifest = export_bundle(
        indexed, cars, tmp_path, training_data_hash="x", model_name="car-price"
    )
    assert manifest.parity_max_rel_diff < 1e-5
    assert manifest.market == indexed.market
    assert read_verified(tmp_path).manifest.market == indexed.market
    graph = onnx.load_from_string(read_verified(tmp_path).model_bytes)
    levels = [t for t in graph.graph.initializer if t.name == onnx_graph.MARKET_LEVEL]
    assert len(levels) == 1
    assert float(onnx.numpy_helper.to_array(levels[0])[0]) == pytest.approx(
        indexed.served_level, abs=1e-6
    )


def test_a_new_level_scales_price_and_interval_and_changes_nothing_else(
    indexed: PricePipeline, cars: pd.DataFrame
) -> None:
    """Another level: price and both bounds times exp(change), every other byte kept."""
    graph = onnx_graph.build_graph(indexed)
    before = graph.SerializeToString()
    after = onnx_graph.with_market_level(before, indexed.served_level + math.log(1.1))
    feeds = onnx_scoring.frame_feeds(cars, onnx_graph.input_spec(graph))
    names = [PRICE_OUTPUT, LOWER_OUTPUT, UPPER_OUTPUT]
    old, new = (onnx_scoring.run_outputs(m, feeds, names) for m in (before, after))
    for was, now in zip(old, new, strict=True):
        np.testing.assert_allclose(now, was * 1.1, rtol=1e-5)
    changed = onnx.load_from_string(after)
    original = onnx.load_from_string(before)
    assert changed.graph.node == original.graph.node
    others = [(t.name, t.raw_data) for t in original.graph.initializer]
    kept = [(t.name, t.raw_data) for t in changed.graph.initializer]
    differ = [a[0] for a, b in zip(others, kept, strict=True) if a != b]
    assert differ == [onnx_graph.MARKET_LEVEL]


def test_prices_at_another_period_follow_the_index(
    indexed: PricePipeline, cars: pd.DataFrame, tmp_path: Path
) -> None:
    """Scored at 2020's period, a bundle prices as its forest at 2020's level."""
    export_bundle(indexed, cars, tmp_path, training_data_hash="x", model_name="car-price")
    bundle = read_verified(tmp_path)
    assert indexed.market is not None
    at_2020 = onnx_scoring.price_at(bundle.model_bytes, bundle.manifest, cars, "2020-09-09")
    want = np.exp(indexed.predict_relative_log(cars) + indexed.market.level_of("2020-09-09"))
    np.testing.assert_allclose(at_2020, want, rtol=1e-5)
    with pytest.raises(KeyError, match="no level for 2019-01-01"):
        onnx_scoring.price_at(bundle.model_bytes, bundle.manifest, cars, "2019-01-01")


def test_a_graph_without_the_level_constant_cannot_be_refreshed(
    indexed: PricePipeline,
) -> None:
    """A graph exported before the index has no level to replace: refused, naming it."""
    graph = onnx_graph.build_graph(indexed)
    kept = [t for t in graph.graph.initializer if t.name != onnx_graph.MARKET_LEVEL]
    del graph.graph.initializer[:]
    graph.graph.initializer.extend(kept)
    with pytest.raises(PipelineError, match="no 'market_level' constant"):
        onnx_graph.with_market_level(graph.SerializeToString(), 0.5)


def test_rows_of_several_periods_are_each_priced_at_their_own_level(
    indexed: PricePipeline, cars: pd.DataFrame, tmp_path: Path
) -> None:
    """Mixed periods: each row at its own period's level, not all at the served one."""
    export_bundle(indexed, cars, tmp_path, training_data_hash="x", model_name="car-price")
    bundle = read_verified(tmp_path)
    days = pd.Series([list(_DAYS)[i % 3] for i in range(len(cars))])
    found = onnx_scoring.prices_at_periods(bundle.model_bytes, bundle.manifest, cars, days)
    for day in _DAYS:
        rows = (days == day).to_numpy()
        want = onnx_scoring.price_at(bundle.model_bytes, bundle.manifest, cars, day)[rows]
        np.testing.assert_allclose(found[rows], want, rtol=1e-9)
    served = onnx_scoring.price_at(bundle.model_bytes, bundle.manifest, cars)
    at_2020 = (days == "2020-09-09").to_numpy()
    assert not np.allclose(found[at_2020], served[at_2020])
