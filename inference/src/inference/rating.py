"""Rate the asking prices a request sent against the interval its prediction answered.

The bands are `shared_schema.rating`'s; this applies them to one model run's cars, for the
response (`encode`) and the prediction log (`predict`) alike.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from inference.model import Prediction
from shared_schema import Car
from shared_schema.rating import NO_INTERVAL, Rating, rate


@dataclass(frozen=True, slots=True)
class Ratings:
    """The ratings of one run's cars, or why there are none.

    Attributes:
        ratings: One per car, None for a car sent without an asking price; None as a whole when
            no car had one or the model has no interval.
        unavailable: Why asking prices that were sent got no rating (`NO_INTERVAL`), else None.
    """

    ratings: list[Rating | None] | None = None
    unavailable: str | None = None


NOT_ASKED = Ratings()


def asking_prices(cars: Sequence[Car]) -> list[float | None]:
    """Each car's asking price, None where it was sent without one (or is a bare `Car`)."""
    return [getattr(car, "asking_price_rub", None) for car in cars]


def rate_listings(cars: Sequence[Car], prediction: Prediction) -> Ratings:
    """The rating of each car's asking price against its interval in `prediction`."""
    asked = asking_prices(cars)
    if all(price is None for price in asked):
        return NOT_ASKED
    if prediction.lower is None or prediction.upper is None:
        return Ratings(unavailable=NO_INTERVAL)
    return Ratings(
        [
            None if price is None else rate(price, low, high)
            for price, low, high in zip(asked, prediction.lower, prediction.upper, strict=True)
        ]
    )
