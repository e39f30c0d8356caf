"""Category codes: frequency and price orders, the unknown code's place, bad orders refused."""

from typing import Any

import numpy as np
import pandas as pd
import pytest

from training.core.encoding import UNKNOWN_CODE, feature_matrix, fit_vocabulary

# brand → prices of its rows. By frequency: CHEAPMANY (4), DEAR (3), WIDE (2), STEADY (2).
# By mean log price: CHEAPMANY < WIDE (log-mean 10 000) < STEADY (40 000) < DEAR; the plain
# mean price would put WIDE (50 500) above STEADY. RARE (one row) is the dearest of all.
_PRICES = {
    "CHEAPMANY": [5_000.0, 6_000.0, 5_500.0, 6_500.0],
    "DEAR": [900_000.0, 1_100_000.0, 1_000_000.0],
    "WIDE": [1_000.0, 100_000.0],
    "STEADY": [40_000.0, 40_000.0],
    "RARE": [9_000_000.0],
}


def _rows(make_cars: Any) -> pd.DataFrame:
    brands = [brand for brand, prices in _PRICES.items() for _ in prices]
    frame = make_cars(len(brands)).copy()
    frame["brand"] = brands
    frame["price"] = [price for prices in _PRICES.values() for price in prices]
    return frame


def test_price_order_ranks_codes_by_mean_log_price(make_cars: Any) -> None:
    """Codes rise with the training rows' mean log price, not with frequency or mean price."""
    frame = _rows(make_cars)
    by_price = fit_vocabulary(frame, min_count=2, order="price").categories["brand"]
    assert by_price == ("CHEAPMANY", "WIDE", "STEADY", "DEAR")
    by_count = fit_vocabulary(frame, min_count=2).categories["brand"]
    assert by_count == ("CHEAPMANY", "DEAR", "STEADY", "WIDE")
    codes = feature_matrix(frame, fit_vocabulary(frame, min_count=2, order="price"))["brand"]
    assert codes.groupby(frame["brand"]).first().to_dict() == {
        "CHEAPMANY": 1.0,
        "WIDE": 2.0,
        "STEADY": 3.0,
        "DEAR": 4.0,
        "RARE": float(UNKNOWN_CODE),
    }


def test_price_order_ties_are_broken_by_value(make_cars: Any) -> None:
    """Categories of equal mean log price are ordered by name, so the codes are reproducible."""
    frame = make_cars(6).copy()
    frame["brand"] = ["B", "A", "C", "B", "A", "C"]
    frame["price"] = 100_000.0
    shuffled = frame.sample(frac=1, random_state=3)
    for rows in (frame, shuffled):
        assert fit_vocabulary(rows, 1, order="price").categories["brand"] == ("A", "B", "C")


def test_rare_and_unseen_categories_sit_below_the_cheapest(make_cars: Any) -> None:
    """Under the price order a rare (even the dearest) or unseen category still gets code 0."""
    frame = _rows(make_cars)
    vocabulary = fit_vocabulary(frame, min_count=2, order="price")
    assert "RARE" not in vocabulary.categories["brand"]
    probe = frame.head(2).copy()
    probe["brand"] = ["RARE", "NEVER_SEEN"]
    probe.loc[probe.index[0], "model_name"] = np.nan
    matrix = feature_matrix(probe, vocabulary)
    assert matrix["brand"].tolist() == [UNKNOWN_CODE, UNKNOWN_CODE]
    assert matrix["model_name"].iloc[0] == UNKNOWN_CODE
    assert min(feature_matrix(frame, vocabulary)["brand"].loc[lambda c: c > 0]) > UNKNOWN_CODE


def test_price_order_learns_only_from_the_rows_it_is_given(make_cars: Any) -> None:
    """The order comes from the rows passed in: only the rows given (training) can move it."""
    frame = _rows(make_cars)
    held_out = frame[frame["brand"] == "WIDE"].assign(price=5_000_000.0)
    fitted = fit_vocabulary(frame, min_count=2, order="price").categories["brand"]
    assert fitted == ("CHEAPMANY", "WIDE", "STEADY", "DEAR")
    moved = fit_vocabulary(pd.concat([frame, held_out]), 2, order="price").categories["brand"]
    assert moved == ("CHEAPMANY", "STEADY", "WIDE", "DEAR")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="price"), "needs the rows' `price` column"),
        (lambda f: f.assign(price=0.0), "positive price on every row"),
        (lambda f: f.assign(price=np.nan), "positive price on every row"),
    ],
)
def test_price_order_refuses_rows_without_usable_prices(
    make_cars: Any, change: Any, message: str
) -> None:
    """Without a positive price on every row the price order is refused, naming the problem."""
    with pytest.raises(ValueError, match=message):
        fit_vocabulary(change(_rows(make_cars)), 2, order="price")


def test_an_unknown_order_is_refused(make_cars: Any) -> None:
    """A misspelt order is refused, naming it, rather than silently falling back to frequency."""
    with pytest.raises(ValueError, match="must be 'frequency' or 'price', got 'prize'"):
        fit_vocabulary(_rows(make_cars), 2, order="prize")  # type: ignore[arg-type]
