"""Adapters: each source's own columns and wording mapped onto the `Car` contract.

Pure functions over DataFrames. An adapter never drops a row: a value it cannot map is passed
through unchanged (or as None), so schema validation quarantines the row with a reason that names
the field and the value.
"""

import ast
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

import numpy as np
import pandas as pd

from shared_schema import FIELD_NAMES

SOURCE_2020: Final = "autoru_2020_moscow"
SOURCE_2022: Final = "autoru_2022_msk_spb"

#: Every listing of the 2020 file was parsed on this day (README: all 2020-09-09).
PARSE_DATE_2020: Final = datetime(2020, 9, 9, tzinfo=UTC)

#: Columns the 2020 file must have: the contract's fields plus the target.
COLUMNS_2020: Final[tuple[str, ...]] = (*FIELD_NAMES, "price")

#: Columns the 2022 adapter reads from the raw auto.ru parquet.
COLUMNS_2022: Final[tuple[str, ...]] = (
    "sell_id",
    "super_gen",
    "brand",
    "model",
    "year",
    "bodytype",
    "kmage",
    "color",
    "engineDisplacement",
    "enginePower",
    "fuelType",
    "vehicleTransmission",
    "drive",
    "wheel",
    "owner",
    "pts",
    "price",
    "parse_date",
)

# Raw auto.ru body type wording → the eleven groups of the 2020 data. Door counts come from the
# wording where it has them ("хэтчбек 3 дв."), else from the usual count for the body.
_BODY_2022: Final[Mapping[str, tuple[str, int]]] = {
    "внедорожник 5 дв.": ("внедорожник", 5),
    "внедорожник 3 дв.": ("внедорожник", 3),
    "внедорожник открытый": ("внедорожник", 3),
    "седан": ("седан", 4),
    "седан 2 дв.": ("седан", 2),
    "седан-хардтоп": ("седан", 4),
    "лифтбек": ("лифтбек", 5),
    "хэтчбек 5 дв.": ("хэтчбек", 5),
    "хэтчбек 3 дв.": ("хэтчбек", 3),
    "универсал 5 дв.": ("универсал", 5),
    "купе": ("купе", 2),
    "купе-хардтоп": ("купе", 2),
    "минивэн": ("минивэн", 5),
    "компактвэн": ("минивэн", 5),
    "микровэн": ("минивэн", 5),
    "пикап двойная кабина": ("пикап", 4),
    "пикап полуторная кабина": ("пикап", 2),
    "пикап одинарная кабина": ("пикап", 2),
    "кабриолет": ("кабриолет", 2),
    "родстер": ("кабриолет", 2),
    "тарга": ("кабриолет", 2),
    "фургон": ("фургон", 5),
    "лимузин": ("лимузин", 4),
}
_TRANSMISSION_2022: Final[Mapping[str, str]] = {
    "автоматическая": "автомат",
    "механическая": "механика",
    "роботизированная": "робот",
    "вариатор": "вариатор",
}
_OWNERS_2022: Final[Mapping[str, str]] = {
    "1 владелец": "1",
    "2 владельца": "2",
    "3 или более": "3+",
}
_PTS_2022: Final[Mapping[str, int]] = {"Оригинал": 1, "Дубликат": 0}
_WHEEL_2022: Final[Mapping[str, int]] = {"Левый": 1, "Правый": 0}
# Fuel words in the order they are tried; "Бензин, газобаллонное оборудование" (a petrol car
# with an LPG kit) maps to its primary fuel, as auto.ru's own 2020 field did.
_FUELS: Final[tuple[tuple[str, str], ...]] = (
    ("электро", "электро"),
    ("гибрид", "гибрид"),
    ("дизель", "дизель"),
    ("бензин", "бензин"),
    ("газ", "газ"),
)


def adapt_2020(raw: pd.DataFrame) -> pd.DataFrame:
    """Map the 2020 EDA CSV (already in the contract's column names) onto the contract.

    Args:
        raw: The file as read, with at least `COLUMNS_2020`.

    Returns:
        The car fields, `price` and the meta columns, one row per input row, in input order.
    """
    out = raw.loc[:, list(COLUMNS_2020)].copy()
    out["engine_displacement"] = _nan_to_none(out["engine_displacement"])
    out["source"] = SOURCE_2020
    # The file has no listing id: the key is filled from the row's content in `assign_ids`.
    out["source_key"] = None
    out["row_number"] = np.arange(len(out), dtype=np.int64)
    out["event_timestamp"] = pd.Timestamp(PARSE_DATE_2020)
    return out.reset_index(drop=True)


def adapt_2022(raw: pd.DataFrame) -> pd.DataFrame:
    """Map the 2022 raw auto.ru scrape onto the contract.

    Brand and model come from the listing's own auto.ru codes (`super_gen.mark/model`, the same
    codes as the 2020 file), the rest from the raw Russian wording. The raw data has no
    generation start year, so `model_year` is set to the production year: the latest the
    generation can have started. `engine_displacement` is None for electric cars (the raw field
    holds their power there) and where the raw value is 0.

    Args:
        raw: The parquet as read, with at least `COLUMNS_2022`.

    Returns:
        The car fields, `price` and the meta columns, one row per input row, in input order.
    """
    codes = raw["super_gen"].map(_mark_and_model)
    body = raw["bodytype"].map(_body)
    fuel = raw["fuelType"].map(_fuel)
    displacement = pd.to_numeric(raw["engineDisplacement"], errors="coerce")
    displacement = displacement.where((fuel != "электро") & (displacement != 0))
    production_year = _as_int(raw["year"])
    out = pd.DataFrame(
        {
            "brand": [c[0] for c in codes],
            "model_name": [c[1] for c in codes],
            "body_type": [b[0] for b in body],
            "color": raw["color"].map(_clean),
            "fuel_type": fuel,
            "model_year": production_year,
            "production_year": production_year,
            "n_doors": [b[1] for b in body],
            "vehicle_transmission": _mapped(raw["vehicleTransmission"], _TRANSMISSION_2022),
            "engine_power": pd.to_numeric(raw["enginePower"], errors="coerce"),
            "engine_displacement": _nan_to_none(displacement),
            "mileage": _as_int(raw["kmage"]),
            "drive_type": raw["drive"].map(_clean),
            "n_owners": _mapped(raw["owner"], _OWNERS_2022),
            "is_original_techpass": _mapped(raw["pts"], _PTS_2022),
            "is_lefthand_drive": _mapped(raw["wheel"], _WHEEL_2022),
            "price": pd.to_numeric(raw["price"], errors="coerce"),
        },
        index=raw.index,
    )
    out["source"] = SOURCE_2022
    out["source_key"] = raw["sell_id"].map(lambda v: None if pd.isna(v) else str(int(v)))
    out["row_number"] = np.arange(len(out), dtype=np.int64)
    out["event_timestamp"] = pd.to_datetime(raw["parse_date"], errors="coerce", utc=True)
    return out.reset_index(drop=True)


def _clean(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _body(value: object) -> tuple[object, int | None]:
    """Body group and door count; unknown wording passes through with no door count."""
    if isinstance(value, str) and value.strip() in _BODY_2022:
        return _BODY_2022[value.strip()]
    return _clean(value), None


def _mapped(column: pd.Series, mapping: Mapping[str, object]) -> pd.Series:
    """Map known wording; keep anything else as it was so validation names it."""
    return column.map(lambda v: mapping.get(v.strip(), v.strip()) if isinstance(v, str) else v)


def _nan_to_none(column: pd.Series) -> pd.Series:
    return column.astype(object).where(column.notna(), None)


def _as_int(column: pd.Series) -> pd.Series:
    """Whole numbers as Python ints; fractions and gaps pass through for validation to reject."""
    numbers = pd.to_numeric(column, errors="coerce")

    def convert(v: float) -> object:
        if pd.isna(v):
            return None
        return int(v) if float(v).is_integer() else float(v)

    return numbers.astype(object).map(convert)


def _fuel(value: object) -> object:
    r"""Find the fuel word in raw wording such as " Бензин" or "['Двигатель\\n…', ' Электро']"."""
    if not isinstance(value, str):
        return value
    text = value.lower()
    for word, fuel in _FUELS:
        if word in text:
            return fuel
    return value.strip()


def _mark_and_model(blob: object) -> tuple[object, object]:
    """Read auto.ru's `mark` and `model` codes from the raw `super_gen` blob.

    The scrape stored it as JSON or as a Python dict literal, sometimes nested under
    `sale-data-attributes`.
    """
    if not isinstance(blob, str):
        return None, None
    try:
        data = json.loads(blob)
    except json.JSONDecodeError:
        try:
            data = ast.literal_eval(blob)
        except (ValueError, SyntaxError):
            return None, None
    if not isinstance(data, dict):
        return None, None
    data = data.get("sale-data-attributes", data)
    mark, model = data.get("mark"), data.get("model")
    return _code(mark), _code(model)


def _code(value: object) -> object:
    if not isinstance(value, str):
        return value
    return re.sub(r"\s+", "_", value.strip().upper())
