"""Patterns checked once per value: the same verdicts and words as msgspec checking them itself."""

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.decode import BatchRequest, _DecodedBatch, _DecodedListing
from inference.patterns import PatternMemo, unpatterned
from shared_schema.rating import Listing

CAR: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "data" / "car.json").read_text("utf-8")
)
TWIN, PATTERNS = unpatterned(Listing)


class _TwinBatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    cars: list[TWIN]  # type: ignore[valid-type]


def schema_error(body: bytes, body_type: type[Any]) -> str | None:
    """The verdict of msgspec itself on `body` against the schema's Struct: its error, or None."""
    try:
        msgspec.json.decode(body, type=body_type)
    except msgspec.ValidationError as error:
        return str(error)
    return None


def memo_error(body: bytes, memo: PatternMemo, *, batch: bool) -> str | None:
    """The verdict of the unpatterned decode followed by the memo's check."""
    try:
        if batch:
            memo.check(msgspec.json.decode(body, type=_TwinBatch).cars, "$.cars[{}]")
        else:
            memo.check([msgspec.json.decode(body, type=TWIN)], "$")
    except msgspec.ValidationError as error:
        return str(error)
    return None


def test_the_twin_is_the_listing_without_its_patterns() -> None:
    """Same fields, order, configuration and keyword rules; only the three patterns gone."""
    assert set(PATTERNS) == {"brand", "model_name", "color"}
    assert issubclass(TWIN, Listing)
    assert TWIN.__struct_fields__ == Listing.__struct_fields__
    assert TWIN.__match_args__ == Listing.__match_args__
    for option in ("frozen", "forbid_unknown_fields", "eq", "gc", "omit_defaults", "tag"):
        assert getattr(TWIN.__struct_config__, option) == getattr(Listing.__struct_config__, option)
    fields = {field.name: field for field in msgspec.inspect.type_info(TWIN).fields}
    original = {field.name: field for field in msgspec.inspect.type_info(Listing).fields}
    for name, field in fields.items():
        if name in PATTERNS:
            assert field.type == msgspec.inspect.StrType(
                min_length=original[name].type.type.min_length,
                max_length=original[name].type.type.max_length,
            )
        else:
            assert field.type == original[name].type, name
    body = msgspec.json.encode(CAR | {"asking_price_rub": 1_500_000})
    assert msgspec.json.encode(msgspec.json.decode(body, type=TWIN)) == msgspec.json.encode(
        msgspec.json.decode(body, type=Listing)
    )


BAD_VALUES = [
    ("brand", "bmw"),
    ("brand", " BMW"),
    ("brand", "BMW\n"),
    ("brand", "BMW X"),
    ("model_name", "5ER\t"),
    ("model_name", "-5ER"),
    ("color", "чёрный\n"),
    ("color", " чёрный"),
    ("color", "чёрный\u200b"),
    ("color", "\ufeffчёрный"),
    ("color", "чёр\x00ный"),
    ("color", "тёмно\x85серый"),
]


@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
def test_a_bad_value_is_refused_in_msgspecs_words(field: str, value: str) -> None:
    """Each value the schema refuses is refused with msgspec's message and path, seen or not."""
    memo = PatternMemo(PATTERNS)
    good = msgspec.json.encode(CAR)
    bad = msgspec.json.encode(CAR | {field: value})
    batch = b'{"cars": [' + good + b"," + bad + b"]}"
    assert memo_error(good, memo, batch=False) is None
    for _ in range(2):  # a refused value is not remembered
        expected = schema_error(bad, Listing)
        assert expected is not None
        assert expected.endswith(f"- at `$.{field}`")
        assert memo_error(bad, memo, batch=False) == expected
        assert memo_error(batch, memo, batch=True) == schema_error(batch, BatchRequest)


text = st.text(
    alphabet=st.sampled_from([*"AZ09_-azё ", "\n", "\t", "\x00", "\x85", "\xa0", "\u200b"]),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(brand=text, model_name=text, color=text)
def test_verdicts_agree_with_msgspec_on_any_strings(
    brand: str, model_name: str, color: str
) -> None:
    """Random strings: accepted or refused, with the same words, as msgspec's own check."""
    body = msgspec.json.encode(CAR | {"brand": brand, "model_name": model_name, "color": color})
    memo = PatternMemo(PATTERNS)
    assert memo_error(body, memo, batch=False) == schema_error(body, Listing)
    assert memo_error(body, memo, batch=False) == schema_error(body, Listing)  # now remembered


def test_the_first_pattern_fault_in_document_order_is_named() -> None:
    """A later car's brand and an earlier car's colour: the earlier car's colour is named."""
    cars = [CAR, CAR | {"color": "чёрный "}, CAR | {"brand": "bmw", "color": " x"}]
    body = msgspec.json.encode({"cars": cars})
    error = memo_error(body, PatternMemo(PATTERNS), batch=True)
    assert error == schema_error(body, BatchRequest)
    assert error is not None
    assert error.endswith("at `$.cars[1].color`")


def test_the_server_decodes_the_batch_request_with_unpatterned_cars() -> None:
    """The decoded batch type is `BatchRequest` but for its cars' type: fields, limits, config."""
    decoded, schema = (msgspec.inspect.type_info(kind) for kind in (_DecodedBatch, BatchRequest))
    assert isinstance(decoded, msgspec.inspect.StructType)
    assert isinstance(schema, msgspec.inspect.StructType)
    assert [field.name for field in decoded.fields] == [field.name for field in schema.fields]
    for option in ("forbid_unknown_fields", "array_like", "tag", "tag_field"):
        assert getattr(decoded, option) == getattr(schema, option)
    cars, expected = decoded.fields[0].type, schema.fields[0].type
    assert isinstance(cars, msgspec.inspect.ListType)
    assert isinstance(expected, msgspec.inspect.ListType)
    assert (cars.min_length, cars.max_length) == (expected.min_length, expected.max_length)
    assert isinstance(cars.item_type, msgspec.inspect.StructType)
    assert cars.item_type.cls is _DecodedListing
    assert issubclass(_DecodedListing, Listing)


def test_within_a_car_the_schema_order_names_the_fault() -> None:
    """The documented difference: keys out of the schema's order, the schema's first is named."""
    rest = {key: value for key, value in (CAR | {"brand": "bmw"}).items() if key != "color"}
    body = msgspec.json.encode({"color": " x", **rest})  # dicts encode in insertion order
    assert (schema_error(body, Listing) or "").endswith("at `$.color`")
    assert (memo_error(body, PatternMemo(PATTERNS), batch=False) or "").endswith("at `$.brand`")


def test_another_fault_is_named_before_a_pattern_fault() -> None:
    """The documented difference: patterns are tested after the rest of the body decoded."""
    cars = [CAR | {"brand": "bmw"}, CAR | {"mileage": -1}]
    body = msgspec.json.encode({"cars": cars})
    assert (schema_error(body, BatchRequest) or "").endswith("at `$.cars[0].brand`")
    assert (memo_error(body, PatternMemo(PATTERNS), batch=True) or "").endswith(
        "at `$.cars[1].mileage`"
    )


def test_past_its_limit_the_memo_still_checks_every_value() -> None:
    """A full memo remembers no more values, and still refuses a bad one."""
    memo = PatternMemo(PATTERNS, limit=1)
    for brand in ("AUDI", "BMW", "KIA"):
        assert memo_error(msgspec.json.encode(CAR | {"brand": brand}), memo, batch=False) is None
    assert memo.remembered() == {"brand": 1, "model_name": 1, "color": 1}
    bad = msgspec.json.encode(CAR | {"brand": "kia"})
    assert memo_error(bad, memo, batch=False) == schema_error(bad, Listing)
