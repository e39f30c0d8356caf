"""Pure parts: splits, encoding, metrics, frame checks, the promotion gate, version tags."""

from typing import Any

import numpy as np
import pandas as pd
import pytest

from shared_schema import FIELD_NAMES
from training.core.dataset import frame_hash, frame_problems
from training.core.encoding import UNKNOWN_CODE, feature_matrix, fit_vocabulary
from training.core.metrics import error_by_decile, regression_metrics
from training.core.model import fit_log_offset
from training.core.promotion import BetterOnNewMarket, NotWorse, decide
from training.core.splits import assign_splits


def test_splits_are_reproducible_and_order_independent() -> None:
    """The same ids and seed give the same assignment whatever the row order."""
    ids = pd.Series([f"id{i}" for i in range(1000)])
    first = assign_splits(ids, seed=3, val_fraction=0.1, test_fraction=0.1)
    second = assign_splits(
        ids.sample(frac=1, random_state=1), seed=3, val_fraction=0.1, test_fraction=0.1
    )
    pd.testing.assert_frame_equal(first, second)
    shares = first["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.8, abs=0.05)
    assert shares["test"] == pytest.approx(0.1, abs=0.03)


def test_splits_refuse_duplicate_ids() -> None:
    """Duplicate listing ids would put one car in two splits: refused."""
    with pytest.raises(ValueError, match="unique"):
        assign_splits(pd.Series(["a", "a", "b"]), seed=0, val_fraction=0.1, test_fraction=0.1)


def test_rare_and_unseen_categories_share_the_unknown_code(make_cars: Any) -> None:
    """Categories below min_count and never-seen ones both encode as UNKNOWN_CODE."""
    frame = make_cars(50)
    frame.loc[0, "brand"] = "ONCE"
    vocabulary = fit_vocabulary(frame, min_count=2)
    assert "ONCE" not in vocabulary.categories["brand"]
    probe = frame.head(2).copy()
    probe.loc[1, "brand"] = "NEVER"
    codes = feature_matrix(probe, vocabulary)["brand"]
    assert codes.tolist() == [UNKNOWN_CODE, UNKNOWN_CODE]
    assert list(feature_matrix(frame, vocabulary).columns) == list(FIELD_NAMES)


def test_brand_models_pair_known_brands_with_known_models(make_cars: Any) -> None:
    """Each known brand lists the known models sold under it, most listed first, nothing rare."""
    frame = make_cars(60)
    frame.loc[:, "brand"] = ["AUDI"] * 30 + ["BMW"] * 30
    frame.loc[:, "model_name"] = ["A6"] * 20 + ["A4"] * 9 + ["RARE"] + ["X5"] * 30
    vocabulary = fit_vocabulary(frame, min_count=2)
    assert vocabulary.brand_models == {"AUDI": ("A6", "A4"), "BMW": ("X5",)}
    record = (vocabulary.to_json(), vocabulary.brand_models_json())
    assert type(vocabulary).from_json(*record) == vocabulary


def test_numeric_features_are_float32_rounded(make_cars: Any) -> None:
    """Numbers reach the booster as the float32 values the graph receives (NaN kept)."""
    frame = make_cars(20)
    frame.loc[0, "engine_displacement"] = 2.8
    frame.loc[1, "engine_displacement"] = np.nan
    matrix = feature_matrix(frame, fit_vocabulary(frame, 1))
    assert matrix.loc[0, "engine_displacement"] == float(np.float32(2.8))
    assert np.isnan(matrix.loc[1, "engine_displacement"])


def test_metrics_of_a_perfect_and_a_biased_prediction() -> None:
    """A perfect prediction has zero error; a 10 % high one has MAPE 0.1."""
    price = np.array([100_000.0, 500_000.0, 2_000_000.0])
    assert regression_metrics(price, price)["mape"] == 0.0
    assert regression_metrics(price, price)["r2_log"] == 1.0
    biased = regression_metrics(price, price * 1.1)
    assert biased["mape"] == pytest.approx(0.1)
    assert biased["mae_log"] == pytest.approx(np.log(1.1))


def test_decile_table_covers_every_row() -> None:
    """Ten deciles, cheapest first, together holding every row."""
    price = pd.Series(np.linspace(1e5, 1e7, 200))
    table = error_by_decile(pd.DataFrame({"price": price, "predicted": price * 1.05}))
    assert table["decile"].tolist() == list(range(1, 11))
    assert table["rows"].sum() == 200
    assert table["mape"].to_numpy() == pytest.approx(0.05)


def test_log_offset_lowers_a_high_bias() -> None:
    """Predictions 5 % too high get an offset of about log(1/1.05)."""
    price = np.full(100, 1e6)
    offset = fit_log_offset(np.log(price * 1.05), price)
    assert offset == pytest.approx(np.log(1 / 1.05), abs=2e-3)


def test_frame_problems_name_the_column() -> None:
    """Missing columns, gaps in required fields and non-numeric numbers are named."""
    frame = pd.DataFrame({"listing_id": ["a"], "price": [1.0]})
    assert "missing column" in frame_problems(frame)[0]


def test_frame_problems_find_gaps_and_bad_prices(make_cars: Any) -> None:
    """A missing mileage and a zero price are reported; missing displacement is fine."""
    frame = make_cars(10)
    assert frame_problems(frame) == []
    frame["mileage"] = frame["mileage"].astype(float)
    frame.loc[0, "mileage"] = np.nan
    frame.loc[1, "price"] = 0.0
    frame.loc[2, "engine_displacement"] = np.nan
    problems = frame_problems(frame)
    assert any(p.startswith("mileage") for p in problems)
    assert any(p.startswith("price") for p in problems)
    assert not any(p.startswith("engine_displacement") for p in problems)


def test_frame_hash_changes_with_content(make_cars: Any) -> None:
    """The data hash is stable for equal frames and changes when a price changes."""
    frame = make_cars(10)
    assert frame_hash(frame) == frame_hash(frame.copy())
    changed = frame.copy()
    changed.loc[0, "price"] += 1
    assert frame_hash(changed) != frame_hash(frame)


def _test(mape: float) -> dict[str, float]:
    return {"test": mape}


def test_promotion_decision() -> None:
    """Better or equal (within tolerance) promotes; worse refuses; no champion promotes."""
    assert decide(_test(0.12), None, NotWorse(0.0)).promote
    assert decide(_test(0.12), _test(0.13), NotWorse(0.0)).promote
    assert decide(_test(0.12), _test(0.12), NotWorse(0.0)).promote
    assert not decide(_test(0.13), _test(0.12), NotWorse(0.0)).promote
    assert decide(_test(0.1205), _test(0.12), NotWorse(0.001)).promote


def test_promotion_reasons_state_the_comparison() -> None:
    """The pipeline policy's reasons: the two MAPEs, the relation and the tolerance."""
    assert decide(_test(0.12), None, NotWorse(0.0)).reason == "no champion yet"
    assert decide(_test(0.12), _test(0.13), NotWorse(0.001)).reason == (
        "challenger MAPE 0.12000 <= champion 0.13000 + tolerance 0.001"
    )
    assert decide(_test(0.14), _test(0.13), NotWorse(0.0)).reason == (
        "challenger MAPE 0.14000 > champion 0.13000 + tolerance 0"
    )


@pytest.mark.parametrize(
    ("challenger", "champion", "policy", "missing"),
    [
        ({"holdout": 0.1}, {"test": 0.1}, NotWorse(0.0), "the challenger has none on test"),
        ({"test": 0.1}, {"holdout": 0.1}, NotWorse(0.0), "the champion has none on test"),
        (
            {"holdout": 0.1},
            None,
            BetterOnNewMarket(0.5),
            "the challenger has none on test_2020",
        ),
    ],
)
def test_the_gate_refuses_scores_its_policy_cannot_compare(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    policy: NotWorse | BetterOnNewMarket,
    missing: str,
) -> None:
    """A model not scored on a row set the policy compares is an error naming policy and set."""
    with pytest.raises(ValueError, match=f"{type(policy).__name__} compares MAPEs on .*{missing}"):
        decide(challenger, champion, policy)
