"""The asking price's rating on /predict and /predict/batch, in the OpenAPI document and the log."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared_schema import FIELD_NAMES
from shared_schema.prediction_log import read_prediction_log
from shared_schema.rating import MAX_ASKING_PRICE_RUB, NO_INTERVAL

from .conftest import MakeClient


@pytest.fixture(scope="module")
def interval_bundle(
    tmp_path_factory: pytest.TempPathFactory, bundle_writer: Callable[..., Path]
) -> Path:
    """The test bundle with an interval (price × 0.8 to price × 1.25)."""
    return bundle_writer(tmp_path_factory.mktemp("interval"), interval=True)


@pytest.mark.parametrize("batch_enabled", [True, False], ids=["batching", "direct"])
def test_asking_price_is_rated_against_the_interval(
    make_client: MakeClient, interval_bundle: Path, car_payload: dict[str, Any], batch_enabled: bool
) -> None:
    """Under the lower bound, inside, over the upper: below_market, fair, above_market."""
    with make_client(interval_bundle, batch_enabled=batch_enabled) as app:
        plain = app.post("/predict", json=car_payload).json()
        assert "rating" not in plain
        low, high = plain["price_lower_rub"], plain["price_upper_rub"]
        asked = {
            "below_market": low * 0.99,
            "fair": plain["price_rub"],
            "above_market": high * 1.01,
        }
        for band, price in asked.items():
            body = app.post("/predict", json={**car_payload, "asking_price_rub": price}).json()
            assert body["rating"] == band
            assert body["price_rub"] == plain["price_rub"]
        cars = [car_payload, *({**car_payload, "asking_price_rub": p} for p in asked.values())]
        batch = app.post("/predict/batch", json={"cars": cars}).json()
        assert batch["ratings"] == [None, *asked]


def test_no_interval_answers_no_rating_and_says_why(
    make_client: MakeClient, model_bundle: Path, car_payload: dict[str, Any]
) -> None:
    """A bundle without an interval prices the car and answers why the asking price is unrated."""
    with make_client(model_bundle) as app:
        body = app.post("/predict", json={**car_payload, "asking_price_rub": 1e6}).json()
        assert "rating" not in body
        assert body["rating_unavailable"] == NO_INTERVAL
        batch = app.post(
            "/predict/batch", json={"cars": [{**car_payload, "asking_price_rub": 1e6}]}
        )
        assert batch.json()["rating_unavailable"] == NO_INTERVAL
        assert "rating_unavailable" not in app.post("/predict", json=car_payload).json()


@pytest.mark.parametrize("asking", [-5, 0, MAX_ASKING_PRICE_RUB + 1, 1e300, "1 000 000", None, [1]])
@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
def test_bad_asking_price_is_a_422_naming_it(
    make_client: MakeClient,
    interval_bundle: Path,
    car_payload: dict[str, Any],
    asking: Any,
    path: str,
) -> None:
    """Negative, zero, over 10^9 RUB or not a number: a 422 whose path names asking_price_rub."""
    car = {**car_payload, "asking_price_rub": asking}
    body = {"cars": [car]} if path.endswith("batch") else car
    with make_client(interval_bundle) as app:
        response = app.post(path, json=body)
    if asking is None:  # null is "no asking price", not an error
        assert response.status_code == 200, response.text
        return
    assert response.status_code == 422, response.text
    (location,) = response.json()["extra"]
    assert location["path"].endswith(".asking_price_rub")


def test_openapi_documents_asking_price_and_rating(
    make_client: MakeClient, model_bundle: Path
) -> None:
    """The request bodies take asking_price_rub with its range; the responses carry the rating."""
    with make_client(model_bundle) as app:
        schema = app.get("/schema/openapi.json").json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    properties = body["schema"]["properties"]
    assert set(properties) == {*FIELD_NAMES, "asking_price_rub"}
    (number, _null) = properties["asking_price_rub"]["anyOf"]
    assert (number["exclusiveMinimum"], number["maximum"]) == (0, MAX_ASKING_PRICE_RUB)
    components = schema["components"]["schemas"]
    bands = ["below_market", "fair", "above_market"]
    for name, field in (("PredictResponse", "rating"), ("BatchResponse", "ratings")):
        documented = _enum(components[name]["properties"][field]) or []
        assert [band for band in documented if band is not None] == bands, name
        assert "rating_unavailable" in components[name]["properties"]


def _enum(node: Any) -> list[str] | None:
    """The first `enum` anywhere in a JSON Schema node."""
    if isinstance(node, dict):
        if "enum" in node:
            return list(node["enum"])
        node = list(node.values())
    if isinstance(node, list):
        for item in node:
            found = _enum(item)
            if found is not None:
                return found
    return None


def test_prediction_log_records_asking_price_and_rating(
    make_client: MakeClient, interval_bundle: Path, car_payload: dict[str, Any], tmp_path: Path
) -> None:
    """Each logged car carries its asking price and band; a car without one carries neither."""
    with make_client(
        interval_bundle, prediction_log_dir=str(tmp_path), prediction_log_flush_s=0.05
    ) as app:
        app.post("/predict", json={**car_payload, "asking_price_rub": 1.0})
        app.post(
            "/predict/batch",
            json={"cars": [car_payload, {**car_payload, "asking_price_rub": MAX_ASKING_PRICE_RUB}]},
        )
    records = read_prediction_log(tmp_path).records
    assert [(r.row, r.asking_price_rub, r.rating) for r in records] == [
        (0, 1.0, "below_market"),
        (0, None, None),
        (1, MAX_ASKING_PRICE_RUB, "above_market"),
    ]
    assert all(type(r.car).__name__ == "Car" for r in records)
