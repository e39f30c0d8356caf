"""The routes on the test bundle: health, readiness, manifest, prices, OpenAPI, the reload guard."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import onnxruntime as ort
import pytest

from shared_schema import FIELD_NAMES, Car
from shared_schema.bundle import read_verified
from shared_schema.feeds import feeds_from_cars

from ..conftest import INTERVAL_FACTORS
from .conftest import Client, MakeClient


def cars_variety(base: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        base,
        {**base, "mileage": 10_000, "production_year": 2020, "model_year": 2019},
        {**base, "brand": "TOYOTA", "model_name": "CAMRY", "engine_displacement": None},
        {**base, "brand": "LADA", "model_name": "VESTA", "color": "оранжевый"},
        {**base, "fuel_type": "электро", "engine_power": 300.0, "engine_displacement": None},
    ]


def onnxruntime_prices(bundle: Path, cars: list[dict[str, Any]]) -> list[float]:
    served = read_verified(bundle)
    session = ort.InferenceSession(served.model_bytes, providers=["CPUExecutionProvider"])
    feeds = feeds_from_cars([msgspec.convert(car, Car) for car in cars], served.manifest.inputs)
    (prices,) = session.run(["price"], feeds)
    return [float(price) for price in np.asarray(prices).reshape(-1)]


def test_health(client: Client) -> None:
    """GET /health answers 200 while the process runs."""
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_after_warm_up(client: Client) -> None:
    """GET /ready answers 200 with the model version once the lifespan loaded the bundle."""
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json()["ready"] is True
    assert response.json()["model_version"] == "1"


def test_model_returns_manifest(client: Client, model_bundle: Path) -> None:
    """GET /model returns the manifest as exported, unknown keys included."""
    response = client.get("/model")
    assert response.status_code == 200
    assert response.json() == msgspec.json.decode((model_bundle / "manifest.json").read_bytes())


def test_predict_matches_onnxruntime(
    client: Client, model_bundle: Path, car_payload: dict[str, Any]
) -> None:
    """POST /predict returns the price onnxruntime computes on the bundle, and the version."""
    cars = cars_variety(car_payload)
    expected = onnxruntime_prices(model_bundle, cars)
    for car, price in zip(cars, expected, strict=True):
        response = client.post("/predict", json=car)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_version"] == "1"
        assert body["price_rub"] == pytest.approx(price, rel=1e-6)
        assert 1e5 < body["price_rub"] < 5e7


def test_batch_equals_single(client: Client, car_payload: dict[str, Any]) -> None:
    """POST /predict/batch returns, in order, exactly the prices of single requests."""
    cars = cars_variety(car_payload)
    singles = [client.post("/predict", json=car).json()["price_rub"] for car in cars]
    response = client.post("/predict/batch", json={"cars": cars})
    assert response.status_code == 200, response.text
    assert response.json() == {"prices_rub": singles, "model_version": "1", "market_date": None}


def test_batch_of_a_thousand(client: Client, car_payload: dict[str, Any]) -> None:
    """A 1,000-car batch (the default limit) is accepted and priced in order."""
    cars = [{**car_payload, "mileage": index * 1000} for index in range(1000)]
    response = client.post("/predict/batch", json={"cars": cars})
    assert response.status_code == 200, response.text
    prices = response.json()["prices_rub"]
    assert len(prices) == 1000
    assert prices == sorted(prices, reverse=True)  # more mileage, lower price in this graph


def test_openapi_schema(client: Client) -> None:
    """Litestar serves an OpenAPI schema documenting the prediction endpoints and the listing."""
    schema = client.get("/schema/openapi.json").json()
    assert {"/predict", "/predict/batch", "/health", "/ready", "/model"} <= set(schema["paths"])
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["title"] == "Listing"
    assert set(body["schema"]["properties"]) == {*FIELD_NAMES, "asking_price_rub"}
    batch = schema["paths"]["/predict/batch"]["post"]["requestBody"]["content"]["application/json"]
    assert batch["schema"]["properties"]["cars"]["items"]["title"] == "Listing"


def test_openapi_documents_every_status_with_its_body(
    make_client: MakeClient, model_bundle: Path
) -> None:
    """Each route's non-200 statuses are documented with the error body; cars <= BATCH_LIMIT."""
    with make_client(model_bundle, batch_limit=7) as test_client:
        schema = test_client.get("/schema/openapi.json").json()
    statuses = {
        (path, method): set(operation["responses"])
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    }
    prediction = {"200", "400", "408", "413", "415", "422", "503"}
    assert statuses == {
        ("/predict", "post"): prediction,
        ("/predict/batch", "post"): prediction,
        ("/health", "get"): {"200"},
        ("/ready", "get"): {"200", "503"},
        ("/model", "get"): {"200", "503"},
        ("/admin/reload", "post"): {"200", "401", "403", "409"},
        ("/vocabulary", "get"): {"200", "503"},
    }
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    for code in prediction - {"200"}:
        body = schema["paths"]["/predict"]["post"]["responses"][code]["content"]
        assert body["application/json"]["schema"] == error
    assert set(schema["components"]["schemas"]["ErrorResponse"]["required"]) == {
        "status_code",
        "detail",
    }
    batch = schema["paths"]["/predict/batch"]["post"]["requestBody"]["content"]
    cars = batch["application/json"]["schema"]["properties"]["cars"]
    assert (cars["minItems"], cars["maxItems"]) == (1, 7)


def test_reload_endpoint_needs_token(make_client: MakeClient, model_bundle: Path) -> None:
    """POST /admin/reload is 403 without a configured token and 401 with a wrong one."""
    with make_client(model_bundle) as test_client:
        assert test_client.post("/admin/reload").status_code == 403
    with make_client(model_bundle, reload_token="s" * 32) as test_client:
        assert test_client.post("/admin/reload").status_code == 401
        wrong = {"authorization": "Bearer " + "x" * 32}
        assert test_client.post("/admin/reload", headers=wrong).status_code == 401


@pytest.mark.parametrize("batch_enabled", [True, False], ids=["batching", "direct"])
def test_interval_is_served_beside_the_price(
    tmp_path: Path,
    bundle_writer: Callable[..., Path],
    make_client: MakeClient,
    car_payload: dict[str, Any],
    batch_enabled: bool,
) -> None:
    """A bundle with an interval answers price_lower_rub ≤ price_rub ≤ price_upper_rub."""
    low, high = INTERVAL_FACTORS
    cars = cars_variety(car_payload)
    with make_client(bundle_writer(tmp_path, interval=True), batch_enabled=batch_enabled) as app:
        for car in cars:
            body = app.post("/predict", json=car).json()
            assert body["price_lower_rub"] == pytest.approx(body["price_rub"] * low, rel=1e-6)
            assert body["price_upper_rub"] == pytest.approx(body["price_rub"] * high, rel=1e-6)
        batch = app.post("/predict/batch", json={"cars": cars}).json()
        assert batch["prices_lower_rub"] == pytest.approx([p * low for p in batch["prices_rub"]])
        assert batch["prices_upper_rub"] == pytest.approx([p * high for p in batch["prices_rub"]])
        assert app.get("/model").json()["interval"]["nominal"] == 0.8


def test_no_interval_fields_without_an_interval(
    client: Client, car_payload: dict[str, Any]
) -> None:
    """A bundle without an interval answers the old response shape and its market date."""
    body = client.post("/predict", json=car_payload).json()
    assert set(body) == {"price_rub", "model_version", "market_date"}


_MARKET = {
    "method": "time-dummy hedonic",
    "periods": ["2020-09-09", "2022-04-01"],
    "levels": [0.0, 0.45],
    "rows": [100, 100],
    "market_date": "2022-04-01",
    "served_level": 0.45,
    "served_rows": 100,
    "parent_version": None,
}


@pytest.mark.parametrize(("market", "date"), [(_MARKET, "2022-04-01"), (None, None)])
def test_the_answer_names_the_market_date_it_priced_for(
    tmp_path: Path,
    bundle_writer: Callable[..., Path],
    make_client: MakeClient,
    car_payload: dict[str, Any],
    market: dict[str, Any] | None,
    date: str | None,
) -> None:
    """The bundle's market date in every answer; null for a bundle without an index."""
    bundle = bundle_writer(tmp_path, market=market)
    expected = onnxruntime_prices(bundle, [car_payload])[0]
    with make_client(bundle) as app:
        single = app.post("/predict", json=car_payload).json()
        batch = app.post("/predict/batch", json={"cars": [car_payload]}).json()
    # Priced as before: the graph alone sets the price, the index only labels it.
    assert single["price_rub"] == pytest.approx(expected, rel=1e-6)
    assert single["market_date"] == batch["market_date"] == date


def test_integer_fields_take_whole_number_floats(
    client: Client, car_payload: dict[str, Any]
) -> None:
    """4.0 and 4e0 are integers as the OpenAPI schema's `integer` says: same price as 4."""
    expected = client.post("/predict", json=car_payload).json()
    whole = {**car_payload, "mileage": 120000.0, "n_doors": 4e0, "is_lefthand_drive": 1.0}
    assert client.post("/predict", json=whole).json() == expected
    batch = client.post("/predict/batch", json={"cars": [car_payload, whole]})
    assert batch.status_code == 200, batch.text
    assert batch.json()["prices_rub"] == [expected["price_rub"]] * 2
