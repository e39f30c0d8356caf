"""Synthetic raw files in both source formats, as the real ones are named and laid out.

The rows are made up here; the real auto.ru data is never copied into the repository.
"""

import json
from pathlib import Path
from typing import Any

import pandas as pd


def row_2020(**overrides: Any) -> dict[str, Any]:
    """One plausible row of the 2020 EDA CSV."""
    row: dict[str, Any] = {
        "body_type": "седан",
        "brand": "TOYOTA",
        "color": "серый",
        "fuel_type": "бензин",
        "model_year": 2012,
        "n_doors": 4,
        "production_year": 2014,
        "vehicle_transmission": "автомат",
        "engine_power": 181.0,
        "mileage": 98_000,
        "drive_type": "передний",
        "n_owners": "2",
        "price": 1_150_000.0,
        "model_name": "CAMRY",
        "is_original_techpass": 1,
        "is_lefthand_drive": 1,
        "engine_displacement": 2.5,
    }
    return row | overrides


def row_2022(**overrides: Any) -> dict[str, Any]:
    """One plausible row of the raw 2022 auto.ru scrape."""
    row: dict[str, Any] = {
        "brand": "Mitsubishi",
        "model": "Lancer",
        "year": 2008.0,
        "bodytype": "седан",
        "kmage": 174_000.0,
        "color": "серебристый",
        "engineDisplacement": 2.0,
        "enginePower": 143.0,
        "fuelType": " Бензин",
        "vehicleTransmission": "вариатор",
        "drive": "передний",
        "wheel": "Левый",
        "state": "Не требует ремонта",
        "owner": "3 или более",
        "pts": "Оригинал",
        "customs": "Растаможен",
        "owningTime": None,
        "price": 800_000.0,
        "region": "moscow",
        "parse_date": "2022-03-28",
        "sell_id": 1_115_194_851,
        "super_gen": json.dumps({"mark": "MITSUBISHI", "model": "LANCER", "year": 2008}),
    }
    return row | overrides


def synthetic_2020(n: int = 40) -> pd.DataFrame:
    """N distinct valid 2020 rows (mileage and price vary)."""
    rows = [
        row_2020(mileage=10_000 * (i + 1), price=1_500_000.0 - 5_000 * (i % 250), brand=brand)
        for i, brand in zip(range(n), ["TOYOTA", "BMW", "KIA", "SKODA"] * n, strict=False)
    ]
    return pd.DataFrame(rows)


def synthetic_2022(n: int = 20) -> pd.DataFrame:
    """N distinct valid 2022 rows."""
    return pd.DataFrame(
        [row_2022(sell_id=1_000 + i, kmage=5_000.0 * (i + 1)) for i in range(n)]
    ).astype({"sell_id": "Int64"})


def write_raw(raw_dir: Path, frame_2020: pd.DataFrame, frame_2022: pd.DataFrame) -> None:
    """Write the two raw files under their real names."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    frame_2020.to_csv(raw_dir / "auto_ru_2020-09-09_moscow.csv.gz", index=False)
    frame_2022.to_parquet(raw_dir / "auto_ru_2022-03_msk_spb_xelorr.parquet", index=False)


#: `level_shifted_markets`: the 2022 prices over the 2020 prices of the same cars.
LEVEL_SHIFT = 1.5
_LEVEL_DAYS = ("2022-03-27", "2022-03-28", "2022-04-01", "2022-04-04")
_LEVEL_CARS = (("TOYOTA", "CAMRY", 1.0), ("MITSUBISHI", "LANCER", 0.7))


def _level_price(i: int) -> float:
    return (2_000_000.0 - 4_000.0 * i) * _LEVEL_CARS[i % 2][2]


def level_shifted_markets(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two brands' `n` cars in 2020 and, `LEVEL_SHIFT` times dearer, in 2022 (over four days).

    A pure market-level move: the refresh of the market level finds it from the older 2022 rows.
    """
    old = pd.DataFrame(
        [
            row_2020(
                brand=_LEVEL_CARS[i % 2][0],
                model_name=_LEVEL_CARS[i % 2][1],
                model_year=2014,
                mileage=5_000 * (i + 1),
                price=_level_price(i),
            )
            for i in range(n)
        ]
    )
    rows = []
    for i in range(n):
        car = (i * 7) % n
        mark, model, _ = _LEVEL_CARS[car % 2]
        rows.append(
            row_2022(
                sell_id=10_000 + i,
                year=2014.0,
                kmage=5_000.0 * (car + 1),
                price=LEVEL_SHIFT * _level_price(car),
                super_gen=json.dumps({"mark": mark, "model": model, "year": 2014}),
                color="серый",
                engineDisplacement=2.5,
                enginePower=181.0,
                vehicleTransmission="автоматическая",
                owner="2 владельца",
                parse_date=_LEVEL_DAYS[i * len(_LEVEL_DAYS) // n],
            )
        )
    return old, pd.DataFrame(rows).astype({"sell_id": "Int64"})
