"""Row-level validation against the `Car` contract, stable listing ids and the duplicate policy.

Pure functions: adapted rows in, accepted rows and quarantine records out. Every input row ends up
in exactly one of three places: accepted, quarantined (with its reason), or counted as an exact
duplicate of an accepted row (its count kept on that row as `duplicate_count`).

Duplicate policy: within one source, rows equal on every car field and the price are one listing
seen several times (the 2020 file has 4,127 such rows). They collapse into one listing before any
split, so a train/test split can never put copies of one car on both sides; `duplicate_count`
keeps how many times it was seen, for weighting or audit.
"""

import hashlib
import math
import re
from collections import Counter
from collections.abc import Hashable, Mapping
from typing import Any, Final

import msgspec
import numpy as np
import pandas as pd

from shared_schema import FIELD_NAMES, Car

#: Columns of the accepted listings table, in order.
LISTING_COLUMNS: Final[tuple[str, ...]] = (
    "listing_id",
    "source",
    "event_timestamp",
    *FIELD_NAMES,
    "price",
    "duplicate_count",
)


class Quarantined(msgspec.Struct, frozen=True, kw_only=True):
    """A row that failed validation, with why and where it came from."""

    source: str
    row_number: int
    field: str
    reason: str
    raw: dict[str, Any]


class ValidationResult(msgspec.Struct, frozen=True, kw_only=True):
    """What validation made of one source's rows."""

    accepted: pd.DataFrame
    quarantined: list[Quarantined]
    rows_in: int
    duplicates: int


def validate_listings(
    adapted: pd.DataFrame,
    raw: pd.DataFrame,
    *,
    price_min: float,
    price_max: float,
) -> ValidationResult:
    """Validate adapted rows, give each a stable id and collapse exact duplicates.

    Args:
        adapted: An adapter's output (car fields, `price`, meta columns), aligned with `raw`.
        raw: The rows as read from the file, kept verbatim in quarantine records.
        price_min: Lowest plausible asking price, RUB.
        price_max: Highest plausible asking price, RUB.

    Returns:
        Accepted listings (`LISTING_COLUMNS`), quarantine records, and counts.
    """
    accepted: list[dict[str, Any]] = []
    quarantined: list[Quarantined] = []
    records: list[dict[str, Any]] = adapted.to_dict("records")  # type: ignore[assignment]
    for position, record in enumerate(records):
        problem = _problem(record, price_min, price_max)
        if problem is not None:
            field, reason = problem
            quarantined.append(
                Quarantined(
                    source=str(record["source"]),
                    row_number=int(record["row_number"]),
                    field=field,
                    reason=reason,
                    raw=_json_safe(raw.iloc[position].to_dict()),
                )
            )
            continue
        accepted.append(record)

    listings, duplicates, clashes = _collapse(accepted)
    for record in clashes:
        quarantined.append(
            Quarantined(
                source=str(record["source"]),
                row_number=int(record["row_number"]),
                field="source_key",
                reason=(
                    f"listing key {record['source_key']!r} is already used by another row "
                    "with different content"
                ),
                raw=_json_safe(raw.iloc[int(record["row_number"])].to_dict()),
            )
        )
    return ValidationResult(
        accepted=listings, quarantined=quarantined, rows_in=len(records), duplicates=duplicates
    )


def reason_counts(quarantined: list[Quarantined]) -> dict[str, int]:
    """Count quarantined rows by field and kind of failure (values elided), most common first."""
    counts = Counter(f"{q.field}: {_generic(q.reason)}" for q in quarantined)
    return dict(counts.most_common())


def _problem(record: dict[str, Any], price_min: float, price_max: float) -> tuple[str, str] | None:
    """The first thing wrong with a row as (field, reason), or None when it is valid."""
    if pd.isna(record["event_timestamp"]):
        return "event_timestamp", "listing date is missing or not a date"
    car = {name: record[name] for name in FIELD_NAMES}
    try:
        msgspec.convert(car, Car)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = re.search(r"at `\$\.(\w+)`", message)
        return (match.group(1) if match else "car"), message
    price = record["price"]
    if not isinstance(price, int | float) or not math.isfinite(price):
        return "price", f"Expected a finite number, got {price!r} - at `$.price`"
    if not price_min <= price <= price_max:
        return "price", f"Expected {price_min:.0f} <= price <= {price_max:.0f} - at `$.price`"
    return None


def _collapse(
    records: list[dict[str, Any]],
) -> tuple[pd.DataFrame, int, list[dict[str, Any]]]:
    """Collapse exact duplicates and assign listing ids.

    Returns:
        The listings table, how many rows were collapsed into an earlier one, and rows whose
        source key clashes with an earlier row of different content.
    """
    by_content: dict[str, dict[str, Any]] = {}
    counts: Counter[str] = Counter()
    for record in records:
        content = _content_hash(record)
        counts[content] += 1
        by_content.setdefault(content, record)

    listings: list[dict[str, Any]] = []
    clashes: list[dict[str, Any]] = []
    seen_ids: set[str] = set()
    for content, record in by_content.items():
        key = record["source_key"] if record["source_key"] is not None else content[:16]
        listing_id = f"{record['source']}:{key}"
        if listing_id in seen_ids:
            clashes.append(record)
            continue
        seen_ids.add(listing_id)
        listings.append(record | {"listing_id": listing_id, "duplicate_count": counts[content]})

    frame = pd.DataFrame(listings, columns=list(LISTING_COLUMNS))
    frame = _typed(frame)
    return frame, len(records) - len(by_content), clashes


def _content_hash(record: dict[str, Any]) -> str:
    content = [record["source"], *(record[name] for name in FIELD_NAMES), float(record["price"])]
    return hashlib.sha256(msgspec.json.encode(content)).hexdigest()


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Give the listings table the same column types whatever the source."""
    ints = ["model_year", "production_year", "n_doors", "mileage", "is_original_techpass"]
    ints += ["is_lefthand_drive", "duplicate_count"]
    for name in ints:
        frame[name] = frame[name].astype(np.int64)
    for name in ("engine_power", "engine_displacement", "price"):
        frame[name] = pd.to_numeric(frame[name], errors="raise").astype(np.float64)
    for name in ("listing_id", "source", "brand", "model_name", "body_type", "color"):
        frame[name] = frame[name].astype(str)
    for name in ("fuel_type", "vehicle_transmission", "drive_type", "n_owners"):
        frame[name] = frame[name].astype(str)
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame


def _generic(reason: str) -> str:
    """A reason without the offending value, so reasons can be counted."""
    reason = reason.split(" - at ", maxsplit=1)[0]
    return re.sub(r"'[^']*'", "'…'", reason)


def _json_safe(row: Mapping[Hashable, Any]) -> dict[str, Any]:
    """A raw row as JSON-ready values: numpy scalars unboxed, NaN and NaT as None."""
    return {str(key): _json_value(value) for key, value in row.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value
