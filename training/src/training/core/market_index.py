"""The market clock: a price index by period, estimated on labelled listings. Pure functions.

A time-dummy hedonic index on log price: log p_i = f(x_i) + L_t(i) + e_i, with the forest as
the hedonic part f. With f fixed, each period's least-absolute-deviation level L_t is the median
of log(price) - f(x) over that period's listings: what the same cars ask now against what the
forest says they are worth relative to the market. The median, not the mean: asking prices
carry 200M-rouble typos that a mean would follow.

The forest is trained on index-deflated log prices (log p - L_t), so a 2020 listing says what
a car is worth relative to its market, and a bundle serves one level (`served_level`): the
market of the newest labelled window, added to the log price as one constant in the graph.

A period is a UTC day (`period_of`). The levels are on the forest's own scale: only their
differences mean something (exp(L_a - L_b) is the market's ratio between days a and b).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from shared_schema.market import MarketIndex

Array = npt.NDArray[np.float64]

#: How the levels are estimated, recorded in every manifest's `market.method`.
METHOD = "time-dummy hedonic on log price: per-day median of log(price) - log(forest price)"

#: Fewest labelled rows a period needs for a level of its own in the index.
MIN_PERIOD_ROWS = 50


class LevelRefusedError(ValueError):
    """A window that cannot carry a level, or a level past the sanity bound; names why."""


def period_of(timestamps: pd.Series) -> pd.Series:
    """Each timestamp's period: its UTC day as an ISO date ('2022-04-01')."""
    return pd.to_datetime(timestamps, utc=True).dt.strftime("%Y-%m-%d")


@dataclass(frozen=True)
class Levels:
    """Log levels by period, oldest first, with the rows behind each."""

    periods: tuple[str, ...]
    levels: tuple[float, ...]
    rows: tuple[int, ...]

    @classmethod
    def flat(cls, periods: pd.Series) -> "Levels":
        """Level 0 for every period: no deflation (a first model, before any index)."""
        counts = periods.value_counts().sort_index()
        return cls(tuple(map(str, counts.index)), (0.0,) * len(counts), tuple(map(int, counts)))

    def of(self, periods: pd.Series) -> Array:
        """The level of each row's period.

        Raises:
            LevelRefusedError: A row's period has no level (named).
        """
        table = dict(zip(self.periods, self.levels, strict=True))
        missing = sorted(set(periods) - set(table))
        if missing:
            raise LevelRefusedError(f"no market level for period(s) {', '.join(missing)}")
        return np.asarray(periods.map(table).to_numpy(np.float64), dtype=np.float64)


def levels_of(index: MarketIndex) -> Levels:
    """A manifest's index as `Levels`."""
    return Levels(tuple(index.periods), tuple(index.levels), tuple(index.rows))


def period_levels(log_residual: Array, periods: pd.Series, earlier: Levels | None = None) -> Levels:
    """Each period's level: the median log residual of its rows.

    A period with fewer than `MIN_PERIOD_ROWS` rows gets its level from `earlier` (levels
    measured before, e.g. by the forest whose levels deflated the training targets) moved by
    the median difference between the two on the periods both measured well; without that,
    the level of the newest period before it (the market as last measured).

    Raises:
        LevelRefusedError: A thin period has neither (the oldest, with no `earlier` level).
    """
    frame = pd.DataFrame({"r": log_residual, "p": periods.to_numpy()})
    grouped = frame.groupby("p", sort=True)["r"]
    medians, counts = grouped.median(), grouped.size()
    thick = {str(p): float(medians[p]) for p in medians.index if counts[p] >= MIN_PERIOD_ROWS}
    before = {} if earlier is None else dict(zip(earlier.periods, earlier.levels, strict=True))
    shifts = [level - before[p] for p, level in thick.items() if p in before]
    shift = float(np.median(shifts)) if shifts else None
    names: list[str] = []
    levels: list[float] = []
    rows: list[int] = []
    for period in map(str, medians.index):
        count = int(counts[period])
        if period in thick:
            level = thick[period]
        elif shift is not None and period in before:
            level = before[period] + shift
        elif levels:
            level = levels[-1]
        else:
            raise LevelRefusedError(
                f"period {period} has {count} labelled rows; a level needs {MIN_PERIOD_ROWS}"
            )
        names.append(period)
        levels.append(level)
        rows.append(count)
    return Levels(tuple(names), tuple(levels), tuple(rows))


def window_mask(times: pd.Series, window_days: float, newest: pd.Timestamp) -> np.ndarray:
    """Which rows fall in the served window: the `window_days` before `newest`, inclusive.

    `newest` is the newest labelled row the model may use (the newest older listing: the
    holdout is after it); the fit and the level refresh both cut their window here.
    """
    stamps = pd.to_datetime(times, utc=True)
    return np.asarray((stamps >= newest - pd.Timedelta(window_days, unit="D")).to_numpy())


def window_level(
    log_residual: Array, brands: pd.Series, *, min_rows: int, min_brands: int = 2
) -> float:
    """The level of one labelled window: the median log residual, if the window can carry one.

    Raises:
        LevelRefusedError: Under `min_rows` rows, or fewer than `min_brands` brands (a level from
            one brand is that brand's move, not the market's).
    """
    if len(log_residual) < min_rows:
        raise LevelRefusedError(
            f"the window has {len(log_residual)} labelled rows; a market level needs {min_rows}"
        )
    found = brands.nunique()
    if found < min_brands:
        names = ", ".join(sorted(map(str, brands.unique())))
        raise LevelRefusedError(
            f"the window's listings are of {found} brand(s) ({names}); a market level needs "
            f"{min_brands}"
        )
    return float(np.median(log_residual))


def check_jump(parent_level: float, level: float, max_ratio: float) -> None:
    """Refuse a level that moves the price by more than ×`max_ratio` either way.

    The bound also catches labels in the wrong unit (prices ×1000 move the level by ×1000).

    Raises:
        LevelRefusedError: |level - parent_level| > log(max_ratio); the message gives the ratio.
    """
    ratio = math.exp(level - parent_level)
    if abs(level - parent_level) > math.log(max_ratio):
        raise LevelRefusedError(
            f"the market level moves prices x{ratio:.4g} against the parent's; the sanity "
            f"bound is x{max_ratio:g} either way (labels in another unit or currency?)"
        )


def market_index(
    levels: Levels,
    *,
    market_date: str,
    served_level: float,
    served_rows: int,
    window_from: str,
    parent_version: str | None = None,
) -> MarketIndex:
    """The manifest's record of an index and the level a graph serves."""
    return MarketIndex(
        method=METHOD,
        periods=list(levels.periods),
        levels=list(levels.levels),
        rows=list(levels.rows),
        market_date=market_date,
        served_level=served_level,
        served_rows=served_rows,
        window_from=window_from,
        parent_version=parent_version,
    )


def extended(
    index: MarketIndex, window: tuple[str, str], level: float, rows: int, parent_version: str
) -> MarketIndex:
    """A refreshed index: the window's (first day, last day) level, served from now on.

    The level is recorded under the window's last day, its market date (added or replaced).
    """
    window_from, period = window
    table = dict(zip(index.periods, zip(index.levels, index.rows, strict=True), strict=True))
    table[period] = (level, rows)
    ordered: Sequence[str] = sorted(table)
    return MarketIndex(
        method=index.method,
        periods=list(ordered),
        levels=[table[p][0] for p in ordered],
        rows=[table[p][1] for p in ordered],
        market_date=period,
        served_level=level,
        served_rows=rows,
        window_from=window_from,
        parent_version=parent_version,
    )
