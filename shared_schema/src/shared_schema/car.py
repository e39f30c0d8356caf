"""The raw car fields of an auto.ru listing: the one contract between training and serving.

Field names, types and ranges are defined here once. Training validates every ingested row
against `Car`; the server decodes request bodies straight into it; the ONNX graph has one input
per field, named exactly as the field. Evolve by adding fields with defaults and bumping
`SCHEMA_VERSION`; never change the type of an existing field.
"""

from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

SCHEMA_VERSION: Final = "1.0.0"

# Upper bound for years: generous on purpose, so the contract does not expire next January.
_MAX_YEAR: Final = 2035

Brand = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=40,
        pattern=r"^[A-Z0-9][A-Z0-9_\-]*$",
        description="Make as an auto.ru code, upper case: MERCEDES, BMW, LAND_ROVER.",
        examples=["BMW"],
    ),
]
ModelName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=60,
        pattern=r"^[A-Z0-9][A-Z0-9_\-]*$",
        description="Model as an auto.ru code, upper case: FOCUS, 5ER, E_KLASSE.",
        examples=["5ER"],
    ),
]
BodyType = Literal[
    "внедорожник",
    "седан",
    "хэтчбек",
    "минивэн",
    "универсал",
    "лифтбек",
    "купе",
    "пикап",
    "кабриолет",
    "фургон",
    "лимузин",
]
Color = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=30,
        description="Colour name in Russian (чёрный, серый, белый, …). Open vocabulary.",
        examples=["чёрный"],
    ),
]
FuelType = Literal["бензин", "дизель", "гибрид", "электро", "газ"]
Transmission = Literal["автомат", "механика", "робот", "вариатор"]
DriveType = Literal["передний", "полный", "задний"]
Owners = Literal["1", "2", "3+", "unknown"]
Year = Annotated[int, Meta(ge=1900, le=_MAX_YEAR)]
Flag = Annotated[int, Meta(ge=0, le=1)]


class Car(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One used car as a seller lists it on auto.ru: the model's raw input.

    Attributes:
        brand: Make, an upper-case auto.ru code.
        model_name: Model, an upper-case auto.ru code.
        body_type: Body type, grouped into eleven kinds.
        color: Colour name in Russian.
        fuel_type: Fuel.
        model_year: Year the model generation started.
        production_year: Year of manufacture.
        n_doors: Number of doors.
        vehicle_transmission: Gearbox kind.
        engine_power: Engine power in horsepower.
        engine_displacement: Displacement in litres; None when unknown (and for electric cars).
        mileage: Mileage in km.
        drive_type: Driven wheels.
        n_owners: Number of owners so far, or "unknown".
        is_original_techpass: 1 if the vehicle passport (ПТС) is the original, 0 if a duplicate.
        is_lefthand_drive: 1 for a left-hand-drive car, 0 for right-hand drive.
    """

    brand: Brand
    model_name: ModelName
    body_type: BodyType
    color: Color
    fuel_type: FuelType
    model_year: Year
    production_year: Year
    n_doors: Annotated[int, Meta(ge=1, le=6)]
    vehicle_transmission: Transmission
    engine_power: Annotated[float, Meta(ge=5.0, le=2000.0, description="Horsepower.")]
    engine_displacement: Annotated[float, Meta(ge=0.1, le=10.0, description="Litres.")] | None = (
        None
    )
    mileage: Annotated[int, Meta(ge=0, le=2_000_000, description="Kilometres.")]
    drive_type: DriveType
    n_owners: Owners
    is_original_techpass: Flag
    is_lefthand_drive: Flag


#: Every field of `Car`, in declaration order: the ONNX graph's input order too.
FIELD_NAMES: Final[tuple[str, ...]] = Car.__struct_fields__

#: Fields fed to the model as categories (strings in the ONNX graph).
CATEGORICAL_FIELDS: Final[tuple[str, ...]] = (
    "brand",
    "model_name",
    "body_type",
    "color",
    "fuel_type",
    "vehicle_transmission",
    "drive_type",
    "n_owners",
)

#: Fields fed to the model as numbers (float32 in the ONNX graph, NaN for missing).
NUMERIC_FIELDS: Final[tuple[str, ...]] = tuple(
    name for name in FIELD_NAMES if name not in CATEGORICAL_FIELDS
)

#: Fields that may be missing (None in `Car`, NaN in the graph).
OPTIONAL_FIELDS: Final[tuple[str, ...]] = ("engine_displacement",)
