"""The market clock's arithmetic: levels by period, the window's level and its refusals."""

import math

import numpy as np
import pandas as pd
import pytest

from training.core.market_index import (
    MIN_PERIOD_ROWS,
    LevelRefusedError,
    Levels,
    check_jump,
    extended,
    market_index,
    period_levels,
    period_of,
    window_level,
)


def test_period_is_the_utc_day() -> None:
    """A listing's period is its UTC day, whatever its offset."""
    times = pd.Series(
        [pd.Timestamp("2022-04-01T23:30:00-02:00"), pd.Timestamp("2022-03-27T12:00:00-02:00")]
    )
    assert period_of(times).tolist() == ["2022-04-02", "2022-03-27"]


def test_each_period_level_is_its_median_residual_and_small_periods_carry_forward() -> None:
    """Robust to a typo listing; a thin day takes the level last measured, counted as itself."""
    rng = np.random.default_rng(0)
    residual = np.concatenate(
        [rng.normal(0.0, 0.1, 100), rng.normal(0.45, 0.1, 100), [0.9] * 10, [12.0]]
    )
    periods = pd.Series(["2020-09-09"] * 100 + ["2022-03-28"] * 100 + ["2022-04-01"] * 11)
    levels = period_levels(residual, periods)
    assert levels.periods == ("2020-09-09", "2022-03-28", "2022-04-01")
    assert levels.rows == (100, 100, 11)
    assert abs(levels.levels[0]) < 0.03
    assert abs(levels.levels[1] - 0.45) < 0.03
    assert levels.levels[2] == levels.levels[1]  # 11 rows < MIN_PERIOD_ROWS: carried forward


def test_an_oldest_period_too_thin_for_a_level_is_refused() -> None:
    """Nothing to carry forward into a thin first period: refused, naming it."""
    periods = pd.Series(["2022-03-27"] * (MIN_PERIOD_ROWS - 1))
    with pytest.raises(LevelRefusedError, match=r"period 2022-03-27 has 49 labelled rows"):
        period_levels(np.zeros(len(periods)), periods)


def test_levels_of_rows_name_a_period_without_a_level() -> None:
    """A row of a period the index does not know is an error naming the period."""
    levels = Levels(("2020-09-09",), (0.0,), (10,))
    assert levels.of(pd.Series(["2020-09-09"])).tolist() == [0.0]
    with pytest.raises(LevelRefusedError, match="2022-04-04"):
        levels.of(pd.Series(["2020-09-09", "2022-04-04"]))


@pytest.mark.parametrize(
    ("rows", "brands", "message"),
    [
        (199, ["BMW", "KIA"], "the window has 199 labelled rows; a market level needs 200"),
        (500, ["KIA"], r"of 1 brand\(s\) \(KIA\); a market level needs 2"),
    ],
)
def test_a_window_too_small_or_too_narrow_is_refused(
    rows: int, brands: list[str], message: str
) -> None:
    """Under 200 labelled rows, or one brand only: no level, and the reason named."""
    names = pd.Series([brands[i % len(brands)] for i in range(rows)])
    with pytest.raises(LevelRefusedError, match=message):
        window_level(np.zeros(rows), names, min_rows=200, min_brands=2)


def test_a_window_of_two_brands_gets_its_median() -> None:
    """200 rows of two brands carry a level: their median residual."""
    residual = np.array([0.4] * 150 + [5.0] * 50)
    names = pd.Series(["BMW"] * 100 + ["KIA"] * 100)
    assert window_level(residual, names, min_rows=200, min_brands=2) == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("ratio", "refused"),
    [(1.567, False), (0.6, False), (2.1, True), (0.45, True), (1000.0, True)],
)
def test_a_level_past_the_sanity_bound_is_refused(ratio: float, refused: bool) -> None:
    """More than x2 either way (prices x1000 in another unit too) is refused, saying the ratio."""
    if refused:
        with pytest.raises(LevelRefusedError, match=r"sanity bound is x2 either way"):
            check_jump(0.1, 0.1 + math.log(ratio), 2.0)
    else:
        check_jump(0.1, 0.1 + math.log(ratio), 2.0)


def test_a_refresh_extends_the_index_and_serves_the_new_period() -> None:
    """The new period joins the index in date order, is served, and names its parent."""
    first = market_index(
        Levels(("2020-09-09", "2022-04-01"), (0.0, 0.4), (100, 50)),
        market_date="2022-04-01",
        served_level=0.41,
        served_rows=50,
        window_from="2022-03-28",
    )
    refreshed = extended(first, ("2022-03-30", "2022-04-04"), 0.45, 300, "7")
    assert refreshed.periods == ["2020-09-09", "2022-04-01", "2022-04-04"]
    assert refreshed.levels == [0.0, 0.4, 0.45]
    assert (refreshed.market_date, refreshed.served_level, refreshed.served_rows) == (
        "2022-04-04",
        0.45,
        300,
    )
    assert refreshed.parent_version == "7"
    assert refreshed.window_from == "2022-03-30"  # the window it was estimated on, recorded
    assert refreshed.level_of("2020-09-09") == 0.0
    with pytest.raises(KeyError, match="no level for 2019-01-01"):
        refreshed.level_of("2019-01-01")


def test_a_thin_period_follows_the_earlier_levels_moved_to_the_new_scale() -> None:
    """A thin day takes its earlier level plus the shift the well-measured days show."""
    residual = np.concatenate([np.full(60, 0.1), np.full(60, 0.6), np.full(10, 9.0)])
    periods = pd.Series(["2020-09-09"] * 60 + ["2022-03-28"] * 60 + ["2022-03-27"] * 10)
    earlier = Levels(("2020-09-09", "2022-03-27", "2022-03-28"), (0.0, 0.45, 0.5), (1, 1, 1))
    levels = period_levels(residual, periods, earlier)
    assert levels.periods == ("2020-09-09", "2022-03-27", "2022-03-28")
    assert levels.levels == pytest.approx((0.1, 0.55, 0.6))
    assert levels.rows == (60, 10, 60)
