import json
import math

import msgspec
import pandas as pd
import pytest

from shared_schema import FIELD_NAMES, Car
from training.core import adapters

from ..raw_markets import row_2020, row_2022

CAR_2020 = {k: v for k, v in row_2020().items() if k != "price"}


def test_2020_adapter_maps_a_hand_written_row() -> None:
    """The 2020 row keeps its values, gains meta columns, and validates as a Car."""
    out = adapters.adapt_2020(pd.DataFrame([row_2020()]))
    record = out.to_dict("records")[0]
    assert {name: record[name] for name in FIELD_NAMES} == CAR_2020
    assert record["price"] == 1_150_000.0
    assert record["source"] == adapters.SOURCE_2020
    assert record["event_timestamp"] == pd.Timestamp("2020-09-09", tz="UTC")
    msgspec.convert({name: record[name] for name in FIELD_NAMES}, Car)


def test_2020_adapter_turns_missing_displacement_into_none() -> None:
    """NaN displacement becomes None, the contract's missing value."""
    out = adapters.adapt_2020(pd.DataFrame([row_2020(engine_displacement=math.nan)]))
    assert out.loc[0, "engine_displacement"] is None


def test_2022_adapter_maps_a_hand_written_row() -> None:
    """Raw 2022 wording maps onto the contract's codes and words."""
    raw = pd.DataFrame(
        [
            row_2022(
                bodytype="хэтчбек 3 дв.",
                vehicleTransmission="роботизированная",
                owner="2 владельца",
                pts="Дубликат",
                wheel="Правый",
                fuelType=" Дизель",
                super_gen=str({"sale-data-attributes": {"mark": "VOLKSWAGEN", "model": "GOLF"}}),
            )
        ]
    )
    record = adapters.adapt_2022(raw).to_dict("records")[0]
    car = {name: record[name] for name in FIELD_NAMES}
    assert car == {
        "brand": "VOLKSWAGEN",
        "model_name": "GOLF",
        "body_type": "хэтчбек",
        "color": "серебристый",
        "fuel_type": "дизель",
        "model_year": 2008,
        "production_year": 2008,
        "n_doors": 3,
        "vehicle_transmission": "робот",
        "engine_power": 143.0,
        "engine_displacement": 2.0,
        "mileage": 174_000,
        "drive_type": "передний",
        "n_owners": "2",
        "is_original_techpass": 0,
        "is_lefthand_drive": 0,
    }
    assert record["source_key"] == "1115194851"
    assert record["event_timestamp"] == pd.Timestamp("2022-03-28", tz="UTC")
    msgspec.convert(car, Car)


@pytest.mark.parametrize(
    ("raw_fuel", "fuel"),
    [
        (" Бензин, газобаллонное оборудование", "бензин"),
        (" Газ, газобаллонное оборудование", "газ"),
        (" Гибрид", "гибрид"),
        ("['Двигатель\\n67 л.с. ', ' 49 кВт ', ' Электро']", "электро"),
    ],
)
def test_2022_fuel_wording(raw_fuel: str, fuel: str) -> None:
    """Noisy raw fuel wording maps to the primary fuel."""
    out = adapters.adapt_2022(pd.DataFrame([row_2022(fuelType=raw_fuel)]))
    assert out.loc[0, "fuel_type"] == fuel


def test_2022_electric_car_has_no_displacement() -> None:
    """An electric car's displacement (the raw field holds its power) becomes None."""
    out = adapters.adapt_2022(
        pd.DataFrame([row_2022(fuelType=" Электро", engineDisplacement=408.0)])
    )
    assert out.loc[0, "engine_displacement"] is None


def test_2022_unknown_wording_passes_through_for_validation() -> None:
    """Unmapped wording is kept as is, so validation can name it in the quarantine."""
    out = adapters.adapt_2022(
        pd.DataFrame([row_2022(bodytype="трицикл", owner="много", super_gen="not json")])
    )
    record = out.to_dict("records")[0]
    assert record["body_type"] == "трицикл"
    assert record["n_doors"] is None
    assert record["n_owners"] == "много"
    assert record["brand"] is None
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({name: record[name] for name in FIELD_NAMES}, Car)


def test_2022_super_gen_json_and_python_literal() -> None:
    """auto.ru codes are read from super_gen whether it is JSON or a Python dict literal."""
    as_json = json.dumps({"mark": "LAND ROVER", "model": "RANGE_ROVER"})
    as_literal = str({"sale-data-attributes": {"mark": "BMW", "model": "X5"}})
    out = adapters.adapt_2022(
        pd.DataFrame([row_2022(super_gen=as_json), row_2022(super_gen=as_literal)])
    )
    assert out["brand"].tolist() == ["LAND_ROVER", "BMW"]
    assert out["model_name"].tolist() == ["RANGE_ROVER", "X5"]
