import pandas as pd

from training.core import adapters
from training.core.validation import LISTING_COLUMNS, reason_counts, validate_listings

from ..raw_markets import row_2020, row_2022


def _validate_2020(rows: list[dict[str, object]]) -> object:
    raw = pd.DataFrame(rows)
    return validate_listings(adapters.adapt_2020(raw), raw, price_min=10_000, price_max=100_000_000)


def test_quarantine_keeps_every_bad_row_with_its_reason() -> None:
    """Each bad row is quarantined with the field, the reason and its raw values; good rows pass."""
    rows = [
        row_2020(),
        row_2020(n_doors=0),
        row_2020(fuel_type="керосин"),
        row_2020(price=500.0),
        row_2020(engine_power=-3.0),
        row_2020(brand="toyota"),
        row_2020(mileage=5),
    ]
    result = _validate_2020(rows)
    assert len(result.accepted) == 2
    by_row = {q.row_number: q for q in result.quarantined}
    assert sorted(by_row) == [1, 2, 3, 4, 5]
    assert by_row[1].field == "n_doors"
    assert ">= 1" in by_row[1].reason
    assert by_row[2].field == "fuel_type"
    assert "керосин" in by_row[2].reason
    assert by_row[3].field == "price"
    assert by_row[4].field == "engine_power"
    assert by_row[5].field == "brand"
    assert by_row[1].raw["n_doors"] == 0
    assert by_row[2].raw["fuel_type"] == "керосин"
    counts = reason_counts(result.quarantined)
    assert sum(counts.values()) == 5
    assert counts["n_doors: Expected `int` >= 1"] == 1


def test_every_row_is_accounted_for() -> None:
    """Accepted + quarantined + collapsed duplicates == rows in."""
    rows = [row_2020(), row_2020(), row_2020(), row_2020(n_doors=0), row_2020(mileage=1)]
    result = _validate_2020(rows)
    assert result.rows_in == 5
    assert (len(result.accepted), len(result.quarantined), result.duplicates) == (2, 1, 2)
    assert len(result.accepted) + len(result.quarantined) + result.duplicates == result.rows_in


def test_exact_duplicates_collapse_into_one_listing_with_a_count() -> None:
    """Identical rows become one listing whose duplicate_count says how often it was seen."""
    result = _validate_2020([row_2020(), row_2020(), row_2020(price=999_000.0)])
    counts = sorted(result.accepted["duplicate_count"].tolist())
    assert counts == [1, 2]
    assert result.accepted["listing_id"].is_unique
    assert tuple(result.accepted.columns) == LISTING_COLUMNS


def test_listing_ids_are_stable_and_content_based() -> None:
    """The same row gets the same id in any file and position; the 2022 id is the sell_id."""
    a = _validate_2020([row_2020(), row_2020(mileage=1)]).accepted
    b = _validate_2020([row_2020(mileage=1), row_2020(mileage=7), row_2020()]).accepted
    assert set(a["listing_id"]) <= set(b["listing_id"])
    raw = pd.DataFrame([row_2022()]).astype({"sell_id": "Int64"})
    c = validate_listings(adapters.adapt_2022(raw), raw, price_min=1, price_max=1e9).accepted
    assert c["listing_id"].tolist() == [f"{adapters.SOURCE_2022}:1115194851"]


def test_same_sell_id_with_other_content_is_quarantined() -> None:
    """A second row reusing a sell_id with different content is kept in quarantine, not merged."""
    raw = pd.DataFrame([row_2022(), row_2022(kmage=1.0)]).astype({"sell_id": "Int64"})
    result = validate_listings(adapters.adapt_2022(raw), raw, price_min=1, price_max=1e9)
    assert len(result.accepted) == 1
    assert [q.field for q in result.quarantined] == ["source_key"]
    assert result.quarantined[0].raw["kmage"] == 1.0


def test_unparseable_listing_date_is_quarantined() -> None:
    """A 2022 row whose parse_date is not a date is quarantined naming event_timestamp."""
    raw = pd.DataFrame([row_2022(parse_date="yesterday")]).astype({"sell_id": "Int64"})
    result = validate_listings(adapters.adapt_2022(raw), raw, price_min=1, price_max=1e9)
    assert [q.field for q in result.quarantined] == ["event_timestamp"]
