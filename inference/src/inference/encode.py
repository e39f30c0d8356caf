"""Encode: the response bodies, as msgspec Structs that Litestar encodes to JSON.

Returning Structs (not dicts) keeps encoding to msgspec's fast path and documents each
response in the OpenAPI schema. Error bodies are Litestar's (`errors`, `decode`);
`ErrorResponse` documents their shape.
"""

import msgspec

from inference.model import Prediction
from inference.rating import NOT_ASKED, Ratings
from shared_schema.rating import Rating


class PredictResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    """The price of one car, and its interval when the model has one.

    `GET /model`'s `interval` gives the interval's nominal coverage and the coverage measured
    at export; old clients that read only `price_rub` are unaffected. With an asking price in
    the request: its `rating` against the interval (`shared_schema.rating`), or, when the model
    has no interval, `rating_unavailable` saying why. `market_date` is the
    market the price is for (ISO date, one per served bundle: a client cannot ask for another);
    null when the bundle has no market index (priced at its training market, as before).
    """

    price_rub: float
    model_version: str
    market_date: str | None
    price_lower_rub: float | None = None
    price_upper_rub: float | None = None
    rating: Rating | None = None
    rating_unavailable: str | None = None

    @classmethod
    def of(cls, prediction: Prediction, rated: Ratings = NOT_ASKED) -> "PredictResponse":
        """The response for a one-row prediction and its car's rating."""
        return cls(
            prediction.prices[0],
            prediction.version,
            prediction.market_date,
            None if prediction.lower is None else prediction.lower[0],
            None if prediction.upper is None else prediction.upper[0],
            None if rated.ratings is None else rated.ratings[0],
            rated.unavailable,
        )


class BatchResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    """Prices (and interval bounds) in the order of the request's cars, for one market date.

    When a car carries an asking price: `ratings`, one per car (null for a car without one),
    or `rating_unavailable` when the model has no interval.
    """

    prices_rub: list[float]
    model_version: str
    market_date: str | None
    prices_lower_rub: list[float] | None = None
    prices_upper_rub: list[float] | None = None
    ratings: list[Rating | None] | None = None
    rating_unavailable: str | None = None

    @classmethod
    def of(cls, prediction: Prediction, rated: Ratings = NOT_ASKED) -> "BatchResponse":
        """The response for a batch's prediction and its cars' ratings."""
        return cls(
            prediction.prices,
            prediction.version,
            prediction.market_date,
            prediction.lower,
            prediction.upper,
            rated.ratings,
            rated.unavailable,
        )


class HealthResponse(msgspec.Struct, frozen=True):
    """The process is alive."""

    status: str


class ReadyResponse(msgspec.Struct, frozen=True):
    """Whether a model is loaded and warm."""

    ready: bool
    model_version: str | None
    schema_version: str
    detail: str | None = None


class ReloadResponse(msgspec.Struct, frozen=True):
    """Outcome of a reload request."""

    reloaded: bool
    model_version: str | None
    detail: str | None = None


class ErrorLocation(msgspec.Struct, frozen=True):
    """Where a 422 found the body at fault, and why."""

    path: str
    message: str


class ErrorResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    """Every error's body, in Litestar's shape: the status, what is wrong, where (422 only)."""

    status_code: int
    detail: str
    extra: list[ErrorLocation] | None = None
