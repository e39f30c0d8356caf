"""The rating study's arithmetic: bands as the contract rates them, shares, quintiles."""

import numpy as np
import pytest
from studies.rating.run import band_codes, bootstrap, by_quintile, shares


def test_bands_and_shares_follow_the_contract() -> None:
    """Under, inside (bounds included) and over the interval count as below, fair, above."""
    price = np.array([50.0, 80.0, 100.0, 125.0, 200.0])
    codes = band_codes(price, np.full(5, 80.0), np.full(5, 125.0))
    assert codes.tolist() == [0, 1, 1, 1, 2]
    assert shares(codes) == pytest.approx({"below_market": 0.2, "fair": 0.6, "above_market": 0.2})


def test_quintiles_split_by_predicted_price_and_bootstrap_brackets_the_share() -> None:
    """Each quintile holds its fifth of the rows; the bootstrap interval holds the share."""
    predicted = np.arange(100.0)
    codes = np.where(predicted < 20, 0, 1)  # the cheapest fifth all below the market
    quintiles = by_quintile(codes, predicted)
    assert [q["below_market"] for q in quintiles] == [1.0, 0.0, 0.0, 0.0, 0.0]
    low, high = bootstrap(codes, resamples=200)["below_market"]
    assert low < 0.2 < high
