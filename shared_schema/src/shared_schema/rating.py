"""A listing's asking price rated against the market: the bands, defined once.

The rating is read off the model's calibrated 80 % price interval (p10-p90, split-conformal:
`shared_schema.bundle.IntervalInfo`), with no threshold of its own:

* `below_market`: the asking price is under the interval's lower bound;
* `fair`: it lies inside the interval, bounds included;
* `above_market`: it is over the upper bound.

So on listings like the ones the interval was calibrated on, about 10 %, 80 % and 10 % of
asking prices fall in the three bands (the shares measured on the test split: the root
README.md, "Price rating", from studies/rating). No finer scale: only the p10 and p90
quantiles are calibrated, and a band between other quantiles would state shares nobody
measured.

A model without an interval rates nothing: the answer says why (`NO_INTERVAL`).
"""

from typing import Annotated, Final, Literal

from msgspec import Meta

from shared_schema.car import Car

Rating = Literal["below_market", "fair", "above_market"]

#: The largest asking price accepted (RUB): far above any car listed on auto.ru.
MAX_ASKING_PRICE_RUB: Final = 1e9

AskingPrice = Annotated[
    float,
    Meta(
        gt=0.0,
        le=MAX_ASKING_PRICE_RUB,
        description="The seller's asking price in RUB, to rate against the market.",
        examples=[1_250_000],
    ),
]

#: Why an asking price got no rating: the served model has no interval.
NO_INTERVAL: Final = (
    "the served model has no calibrated price interval, so the asking price cannot be rated"
)


class Listing(Car, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A car as listed: its fields and, optionally, the asking price to rate.

    The model's input is the `Car` part only; `asking_price_rub` never reaches the graph.
    """

    asking_price_rub: AskingPrice | None = None


def rate(asking_price: float, lower: float, upper: float) -> Rating:
    """The band of `asking_price` against the interval [`lower`, `upper`] (module docstring)."""
    if asking_price < lower:
        return "below_market"
    if asking_price > upper:
        return "above_market"
    return "fair"
