"""Retraining's pure parts: the newest slice, recency weights, the rows, the gate, weighted fits."""

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest

from training.config import load_params
from training.core.fitting import fit_pipeline
from training.core.promotion import BetterOnNewMarket, NotWorse, decide
from training.core.retrain import (
    newest_slice,
    precedes,
    recency_weights,
    retrain_rows,
    rows_after,
    slice_key,
)

from ..conftest import REPO_ROOT
from ..synthetic import SMALL_LGBM

# A datetime.timedelta: this pandas' own Timedelta() warns under this NumPy.
_DAY = dt.timedelta(days=1)


def _labels(days: list[int], ids: list[str] | None = None) -> pd.DataFrame:
    """Labelled listings on the given days of April 2022 (UTC)."""
    ids = ids or [f"new:{i:03d}" for i in range(len(days))]
    start = pd.Timestamp("2022-04-01", tz="UTC")
    return pd.DataFrame(
        {"listing_id": ids, "event_timestamp": [start + d * _DAY for d in days], "price": 1e6}
    )


def test_newest_slice_holds_the_newest_rows_and_breaks_ties_by_id() -> None:
    """The slice is the newest ⌈fraction·n⌉ rows; within a day, the highest listing ids."""
    labels = _labels([3, 0, 3, 1, 2, 3], ids=["e", "a", "c", "b", "d", "f"])
    older, newest = newest_slice(labels, 0.3)
    assert newest["listing_id"].tolist() == ["e", "f"]
    assert older["listing_id"].tolist() == ["a", "b", "d", "c"]
    assert older["event_timestamp"].max() <= newest["event_timestamp"].min()
    assert set(older["listing_id"]).isdisjoint(newest["listing_id"])


def test_newest_slice_ignores_row_order() -> None:
    """Shuffled input rows give the same slice."""
    labels = _labels([i % 7 for i in range(50)])
    first = newest_slice(labels, 0.2)[1]
    again = newest_slice(labels.sample(frac=1.0, random_state=3), 0.2)[1]
    pd.testing.assert_frame_equal(first, again)


def test_newest_slice_rejects_duplicate_ids() -> None:
    """A listing id seen twice cannot be placed on one side of the cut."""
    with pytest.raises(ValueError, match="not unique"):
        newest_slice(_labels([0, 1], ids=["x", "x"]), 0.5)


def test_slice_keys_order_time_then_id() -> None:
    """`precedes` compares event time first, then listing id; equal keys do not precede."""
    rows = _labels([0, 0, 1], ids=["b", "c", "a"])
    keys = [slice_key(row) for _, row in rows.iterrows()]
    assert precedes(keys[0], keys[1])
    assert precedes(keys[1], keys[2])
    assert not precedes(keys[2], keys[0])
    assert not precedes(keys[1], keys[1])


def test_rows_after_keep_only_what_a_model_trained_through_a_key_never_saw() -> None:
    """`rows_after`: strictly after the key in time, then id; the key's own row is dropped."""
    rows = _labels([0, 0, 1, 2], ids=["b", "c", "a", "d"])
    through = slice_key(rows.iloc[1])
    assert list(rows_after(rows, through)["listing_id"]) == ["a", "d"]
    assert list(rows_after(rows, slice_key(rows.iloc[0]))["listing_id"]) == ["c", "a", "d"]
    assert list(rows_after(rows, None)["listing_id"]) == ["b", "c", "a", "d"]


def test_recency_weights_halve_every_half_life() -> None:
    """A row one half-life older weighs 0.5, two half-lives 0.25, newer rows 1."""
    newest = pd.Timestamp("2022-04-04", tz="UTC")
    times = pd.Series([newest, newest - 180 * _DAY, newest - 360 * _DAY, newest + _DAY])
    np.testing.assert_allclose(recency_weights(times, newest, 180.0), [1.0, 0.5, 0.25, 1.0])


def _frame(prefix: str, n: int, make_cars: Any, seed: int) -> pd.DataFrame:
    return make_cars(n, seed=seed).assign(listing_id=[f"{prefix}:{i:03d}" for i in range(n)])


def test_retrain_rows_keep_the_holdout_out_of_training(make_cars: Any) -> None:
    """Holdout rows are in neither train nor val; new-market val rows are the calibration."""
    new = _frame("new", 100, make_cars, seed=5)
    old_train, old_val = _frame("old", 60, make_cars, 6), _frame("oldval", 20, make_cars, 7)
    times = pd.concat(
        [
            pd.Series(pd.Timestamp("2020-09-09", tz="UTC"), index=old_train["listing_id"]),
            pd.Series(pd.Timestamp("2020-09-09", tz="UTC"), index=old_val["listing_id"]),
            _labels(list(range(100)), ids=new["listing_id"].tolist()).set_index("listing_id")[
                "event_timestamp"
            ],
        ]
    )
    labels = times.rename("event_timestamp").reset_index()
    _, newest = newest_slice(labels.loc[labels["listing_id"].str.startswith("new")], 0.2)
    val_ids = new["listing_id"].iloc[:30:2]
    rows = retrain_rows(
        new,
        (old_train, old_val),
        holdout_ids=newest["listing_id"],
        val_ids=val_ids,
        times=times,
        half_life_days=180.0,
    )
    held = set(rows.holdout["listing_id"])
    assert held == set(new["listing_id"].iloc[80:])
    assert held.isdisjoint(rows.train["listing_id"])
    assert held.isdisjoint(rows.val["listing_id"])
    assert set(rows.calibration["listing_id"]) == set(val_ids)
    assert set(rows.calibration["listing_id"]) <= set(rows.val["listing_id"])
    assert set(rows.calibration["listing_id"]).isdisjoint(rows.train["listing_id"])
    assert len(rows.train) == 60 + 80 - 15
    assert len(rows.val) == 20 + 15
    # 2020 rows weigh far less than the newest 2022 rows, which weigh 1.
    old = rows.train["listing_id"].str.startswith("old").to_numpy()
    assert rows.train_weight[old].max() < 0.15 < rows.train_weight[~old].min()
    assert rows.train_weight.max() == 1.0


def _scores(holdout: float, test_2020: float) -> dict[str, float]:
    return {"holdout": holdout, "test_2020": test_2020}


@pytest.mark.parametrize(
    ("challenger", "champion", "promote", "reason"),
    [
        ((0.15, 0.125), (0.30, 0.124), True, "better on the new market, not much worse"),
        ((0.15, 0.20), (0.30, 0.124), False, "catastrophically worse on 2020"),
        ((0.31, 0.10), (0.30, 0.124), False, "not better on the new market"),
        ((0.30, 0.10), (0.30, 0.124), False, "not better on the new market"),
        ((0.15, 0.124 * 1.1), (0.30, 0.124), True, "better on the new market"),
    ],
)
def test_gate_needs_better_new_market_and_bounded_old_market_mape(
    challenger: tuple[float, float], champion: tuple[float, float], promote: bool, reason: str
) -> None:
    """Promote only when better on the holdout and 2020 MAPE ≤ champion's × (1 + tolerance)."""
    decision = decide(_scores(*challenger), _scores(*champion), BetterOnNewMarket(0.10))
    assert decision.promote is promote
    assert decision.reason.startswith(reason)


def test_gate_promotes_when_there_is_no_champion() -> None:
    """The first registered model needs no comparison."""
    decision = decide(_scores(0.5, 0.5), None, BetterOnNewMarket(0.1))
    assert (decision.promote, decision.reason) == (True, "no champion yet")


def test_gate_states_both_markets_figures() -> None:
    """The retrain policy's reason carries both MAPEs, the 2020 ceiling and its tolerance."""
    decision = decide(_scores(0.15, 0.2), _scores(0.3, 0.124), BetterOnNewMarket(0.1))
    assert decision.reason == (
        "catastrophically worse on 2020: holdout MAPE 0.15000 < champion 0.30000; "
        "2020 test MAPE 0.20000 vs ceiling 0.13640 (champion 0.12400 x (1 + 0.1))"
    )


def test_one_gate_two_policies_can_disagree() -> None:
    """The same scores under each policy: each reads its own row sets and its own rule."""
    challenger = {"test": 0.13, "holdout": 0.15, "test_2020": 0.13}
    champion = {"test": 0.12, "holdout": 0.30, "test_2020": 0.12}
    assert decide(challenger, champion, BetterOnNewMarket(0.5)).promote
    assert not decide(challenger, champion, NotWorse(0.0)).promote


def test_weights_pull_the_fit_towards_the_heavy_market(make_cars: Any) -> None:
    """With the new market (prices x2) weighted up, predictions move towards its prices."""
    settings = load_params(REPO_ROOT / "params.yaml").train
    settings = type(settings)(
        **{
            **{f: getattr(settings, f) for f in settings.__struct_fields__},
            "num_boost_round": 60,
            "early_stopping_rounds": 60,
            "calibrate_scale": False,
        }
    )
    old, new = make_cars(600, seed=11), make_cars(600, seed=12)
    new = new.assign(price=new["price"] * 2.0)
    train = pd.concat([old, new], ignore_index=True)
    probe = make_cars(200, seed=13)

    def level(weight_new: float) -> float:
        weights = np.r_[np.ones(len(old)), np.full(len(new), weight_new)]
        pipeline, _ = fit_pipeline(
            train, train, settings, SMALL_LGBM, calibration=new, weights=(weights, weights)
        )
        return float(np.median(pipeline.predict_price(probe) / probe["price"]))

    # Prices x1 (old) and x2 (new): the fit's level follows whichever market weighs more.
    assert level(0.05) < 1.25
    assert level(20.0) > 1.75
