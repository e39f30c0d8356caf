"""The market index a bundle records (`Manifest.market`): levels by period and the served one.

Kept apart from `shared_schema.bundle` (the bundle's files and reader); what the levels mean
and how they are estimated: `training.core.market_index`, docs/drift-loop.md ("The market
clock").
"""

from typing import Annotated

import msgspec
from msgspec import Meta


class MarketIndex(msgspec.Struct, frozen=True, kw_only=True):
    """The market price index a bundle was priced with, and the one level its graph serves.

    The forest prices a car relative to the market (trained on index-deflated log prices); the
    graph adds `served_level`, one constant, to its log price, so the price and both interval
    bounds scale by `exp(served_level)`. A bundle serves one market date: a client cannot ask
    for another (docs/drift-loop.md, "The market clock").

    Attributes:
        method: How the levels were estimated (e.g. the hedonic per-period median).
        periods: The periods (UTC days, ISO dates) with a level, oldest first.
        levels: The log price level of each period, on the forest's scale.
        rows: The labelled rows each period's level was estimated on.
        market_date: The date whose market the graph prices for (ISO date): the last day of
            the labelled window `served_level` was estimated on.
        served_level: The log level the graph adds: the market of the window `window_from`
            … `market_date` (its rows' median), not `level_of(market_date)`, that one day's
            level; the two differ by the market's move within the window (~1 % on the real
            data).
        served_rows: The labelled rows `served_level` was estimated on.
        window_from: The first day of that window (ISO date); None in a bundle written before
            it was recorded.
        parent_version: The registry version whose forest a level refresh reused (the
            version that trained it, through any chain of refreshes); None for a bundle with
            its own forest.
    """

    method: Annotated[str, Meta(min_length=1)]
    periods: list[str]
    levels: list[float]
    rows: list[int]
    market_date: Annotated[str, Meta(pattern=r"^\d{4}-\d{2}-\d{2}$")]
    served_level: float
    served_rows: int
    window_from: str | None = None
    parent_version: str | None = None

    def level_of(self, period: str) -> float:
        """The log level of `period`.

        Raises:
            KeyError: The index has no level for that period.
        """
        if period not in self.periods:
            raise KeyError(f"the market index has no level for {period}")
        return self.levels[self.periods.index(period)]
