"""The rating bands and the asking price's range, as the contract defines them."""

import msgspec
import pytest

from shared_schema import Car
from shared_schema.prediction_log import LOG_FORMAT, PredictionRecord
from shared_schema.rating import MAX_ASKING_PRICE_RUB, Listing, rate

from ..conftest import SAMPLE_CAR


@pytest.mark.parametrize(
    ("asking", "band"),
    [
        (799.0, "below_market"),
        (800.0, "fair"),
        (1000.0, "fair"),
        (1250.0, "fair"),
        (1251.0, "above_market"),
    ],
)
def test_bands_split_at_the_interval_bounds(asking: float, band: str) -> None:
    """Under the lower bound is below the market, over the upper above, the bounds are fair."""
    assert rate(asking, 800.0, 1250.0) == band


@pytest.mark.parametrize("asking", [-1, 0, 0.0, MAX_ASKING_PRICE_RUB * 1.000001, "1000000", True])
def test_listing_refuses_an_asking_price_out_of_range_or_not_a_number(asking: object) -> None:
    """Negative, zero, over 10^9 RUB or not a number: the error names asking_price_rub."""
    body = msgspec.json.encode({**SAMPLE_CAR, "asking_price_rub": asking})
    with pytest.raises(msgspec.ValidationError, match=r"at `\$\.asking_price_rub`"):
        msgspec.json.decode(body, type=Listing)


def test_listing_is_a_car_with_an_optional_asking_price() -> None:
    """A car without an asking price decodes as a listing; the largest price is accepted."""
    plain = msgspec.json.decode(msgspec.json.encode(SAMPLE_CAR), type=Listing)
    assert plain.asking_price_rub is None
    assert isinstance(plain, Car)
    top = {**SAMPLE_CAR, "asking_price_rub": MAX_ASKING_PRICE_RUB}
    assert msgspec.convert(top, Listing).asking_price_rub == MAX_ASKING_PRICE_RUB


def test_old_log_lines_read_without_rating_and_new_ones_with_it() -> None:
    """A line written before the rating reads with none; a rated line keeps its price and band."""
    old = {
        "log_format": LOG_FORMAT,
        "ts": "2026-11-27T10:15:03.123456Z",
        "request_id": "r1",
        "row": 0,
        "model_version": "1",
        "schema_version": "1.0.1",
        "price_rub": 1.0,
        "car": SAMPLE_CAR,
    }
    record = msgspec.convert(old, PredictionRecord)
    assert (record.asking_price_rub, record.rating) == (None, None)
    assert b"rating" not in msgspec.json.encode(record)
    rated = msgspec.convert({**old, "asking_price_rub": 2.0, "rating": "fair"}, PredictionRecord)
    assert (rated.asking_price_rub, rated.rating) == (2.0, "fair")
