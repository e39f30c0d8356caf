"""The raw car fields of an auto.ru listing: the one contract between training and serving.

Field names, types and ranges are defined here once. Training validates every ingested row
against `Car`; the server decodes request bodies straight into it; the ONNX graph has one input
per field, named exactly as the field. Evolve by adding fields with defaults and bumping
`SCHEMA_VERSION`; never change the type of an existing field.

Categorical strings are rejected, never normalised, when they carry a control character
(Unicode category Cc: newline, tab, NUL, ...) anywhere or whitespace (Unicode White_Space, the
zero-width space, the BOM) at either end. The model sees each category as an exact string, so
"RIO" with a trailing newline, or " чёрный", would be priced silently as an unseen category.
Normalising instead would have to happen identically wherever a `Car` is made (each training
adapter, the server, tests, any future client); a rule in the schema is one check that
training's ingest (rows quarantined, reason named) and the server (a 422 naming the field)
apply alike, and the client learns of its bug. The closed vocabularies (`Literal`s) accept
their exact values only, so they obey the rule already; brand and model are upper-case codes
(a pattern without spaces); colour is open text under `TEXT_PATTERN`, inner spaces allowed.
"""

from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

# 1.0.1: the categorical-string rule (module docstring). Values once accepted are refused now,
# but no field changed type, meaning or presence, so it is a patch: by the rule in
# `shared_schema.bundle` (the patch part never matters) bundles of 1.0.0 and 1.0.1 load on
# servers of either, as they should.
SCHEMA_VERSION: Final = "1.0.1"

# Upper bound for years: generous on purpose, so the contract does not expire next January.
_MAX_YEAR: Final = 2035

# The patterns are checked by msgspec with Python's `re.search` and published in the OpenAPI
# document as JSON Schema, whose regexes are ECMA-262: each must mean the same in both.
# `$(?!\n)` is the end of the string in both (Python's `$` alone also matches before a final
# newline; ECMA-262 has no `\Z`).
_END: Final = r"$(?!\n)"
# Unicode category Cc, forbidden anywhere in a categorical string.
_CONTROL: Final = r"\x00-\x1f\x7f-\x9f"
# Unicode White_Space outside Cc, and the invisible zero-width space and BOM: not at either end.
_SPACE: Final = r" \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u200b\ufeff"

#: Brand and model codes: upper-case letters, digits, `_` and `-`, not starting with `_` or `-`.
CODE_PATTERN: Final = rf"^[A-Z0-9][A-Z0-9_\-]*{_END}"
#: Open-text categories (colour): no control character, no whitespace at either end.
TEXT_PATTERN: Final = rf"^[^{_CONTROL}{_SPACE}](?:[^{_CONTROL}]*[^{_CONTROL}{_SPACE}])?{_END}"

Brand = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=40,
        pattern=CODE_PATTERN,
        description="Make as an auto.ru code, upper case: MERCEDES, BMW, LAND_ROVER.",
        examples=["BMW"],
    ),
]
ModelName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=60,
        pattern=CODE_PATTERN,
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
        pattern=TEXT_PATTERN,
        description="Colour name in Russian (чёрный, серый, белый, …). Open vocabulary; no "
        "control characters, no whitespace at either end.",
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

    Categorical strings are exact: no control characters, no surrounding whitespace (the rule
    and why: the module docstring).

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
