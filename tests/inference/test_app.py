import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import onnxruntime as ort
import pytest
from litestar.testing import TestClient

from inference.app import create_app
from inference.settings import Settings
from shared_schema import FIELD_NAMES, Car
from shared_schema.bundle import feeds_from_cars

Client = TestClient[Any]


def make_client(model_dir: Path, **settings: Any) -> TestClient[Any]:
    options: dict[str, Any] = {"reload_poll_s": 0.0, **settings}
    return TestClient(create_app(Settings(model_dir=str(model_dir), **options)))


@pytest.fixture(params=[True, False], ids=["batching", "direct"])
def client(request: pytest.FixtureRequest, model_bundle: Path) -> Iterator[Client]:
    with make_client(model_bundle, batch_enabled=request.param) as test_client:
        yield test_client


def cars_variety(base: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        base,
        {**base, "mileage": 10_000, "production_year": 2020, "model_year": 2019},
        {**base, "brand": "TOYOTA", "model_name": "CAMRY", "engine_displacement": None},
        {**base, "brand": "LADA", "model_name": "VESTA", "color": "оранжевый"},
        {**base, "fuel_type": "электро", "engine_power": 300.0, "engine_displacement": None},
    ]


def onnxruntime_prices(bundle: Path, cars: list[dict[str, Any]]) -> list[float]:
    session = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = feeds_from_cars([msgspec.convert(car, Car) for car in cars])
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


def test_not_ready_without_bundle(tmp_path: Path, car_payload: dict[str, Any]) -> None:
    """Without a bundle the process is healthy but /ready and /predict answer 503 + Retry-After."""
    with make_client(tmp_path / "missing") as test_client:
        assert test_client.get("/health").status_code == 200
        ready = test_client.get("/ready")
        assert ready.status_code == 503
        assert ready.headers["retry-after"] == "1"
        assert "cannot read bundle" in ready.json()["detail"]
        predict = test_client.post("/predict", json=car_payload)
        assert predict.status_code == 503
        assert predict.headers["retry-after"] == "1"
        assert test_client.get("/model").status_code == 503


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
    assert response.json() == {"prices_rub": singles, "model_version": "1"}


def test_batch_of_a_thousand(client: Client, car_payload: dict[str, Any]) -> None:
    """A 1,000-car batch (the default limit) is accepted and priced in order."""
    cars = [{**car_payload, "mileage": index * 1000} for index in range(1000)]
    response = client.post("/predict/batch", json={"cars": cars})
    assert response.status_code == 200, response.text
    prices = response.json()["prices_rub"]
    assert len(prices) == 1000
    assert prices == sorted(prices, reverse=True)  # more mileage, lower price in this graph


def test_metrics_exposition(client: Client, car_payload: dict[str, Any]) -> None:
    """GET /metrics exposes the contract's metric names with the requests just served."""
    client.post("/predict", json=car_payload)
    client.post("/predict", json={**car_payload, "brand": "LADA"})
    client.post("/predict", json={**car_payload, "mileage": -1})
    text = client.get("/metrics").text
    assert 'carprice_http_requests_total{endpoint="/predict",status="200"} 2.0' in text
    assert 'carprice_http_requests_total{endpoint="/predict",status="422"} 1.0' in text
    assert 'carprice_http_request_duration_seconds_bucket{endpoint="/predict",le="0.01"}' in text
    assert 'carprice_unknown_category_total{field="brand"} 1.0' in text
    assert "carprice_predicted_price_rub_count 2.0" in text  # warm-up runs are not counted
    assert 'carprice_model_loads_total{outcome="success"} 1.0' in text
    assert "carprice_model_ready 1.0" in text
    assert 'carprice_model_info{model_name="car-price",model_version="1"' in text
    for name in ("carprice_batch_rows", "carprice_queue_depth", "carprice_inflight_requests"):
        assert name in text


def test_openapi_schema(client: Client) -> None:
    """Litestar serves an OpenAPI schema documenting the prediction endpoints and the Car."""
    schema = client.get("/schema/openapi.json").json()
    assert {"/predict", "/predict/batch", "/health", "/ready", "/model"} <= set(schema["paths"])
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["title"] == "Car"
    assert set(body["schema"]["properties"]) == set(FIELD_NAMES)
    batch = schema["paths"]["/predict/batch"]["post"]["requestBody"]["content"]["application/json"]
    assert batch["schema"]["properties"]["cars"]["items"]["title"] == "Car"


def bad_input_cases() -> list[Any]:
    car: dict[str, Any] = json.loads(
        (Path(__file__).parents[1] / "data" / "car.json").read_text("utf-8")
    )
    encoded = msgspec.json.encode(car)
    missing = {key: value for key, value in car.items() if key != "mileage"}
    json_type = {"content-type": "application/json"}

    def case(
        name: str, path: str, body: bytes, status: int, needle: str, headers: dict[str, str]
    ) -> Any:
        return pytest.param(path, body, headers, status, needle, id=name)

    return [
        case("malformed-json", "/predict", b'{"brand": ', 400, "Malformed JSON", json_type),
        case("empty-body", "/predict", b"", 400, "Malformed JSON", json_type),
        case(
            "not-an-object", "/predict", b"[1, 2]", 422, "Expected `object`, got `array`", json_type
        ),
        case(
            "wrong-type",
            "/predict",
            msgspec.json.encode({**car, "mileage": "120000"}),
            422,
            "$.mileage: Expected `int`, got `str`",
            json_type,
        ),
        case(
            "missing-field",
            "/predict",
            msgspec.json.encode(missing),
            422,
            "missing required field `mileage`",
            json_type,
        ),
        case(
            "unknown-field",
            "/predict",
            msgspec.json.encode({**car, "price": 1}),
            422,
            "unknown field `price`",
            json_type,
        ),
        case(
            "out-of-range",
            "/predict",
            msgspec.json.encode({**car, "production_year": 1800}),
            422,
            "$.production_year",
            json_type,
        ),
        case(
            "bad-enum",
            "/predict",
            msgspec.json.encode({**car, "fuel_type": "керосин"}),
            422,
            "$.fuel_type",
            json_type,
        ),
        case(
            "null-for-required",
            "/predict",
            msgspec.json.encode({**car, "brand": None}),
            422,
            "$.brand",
            json_type,
        ),
        case("nan", "/predict", encoded.replace(b"245.0", b"NaN"), 400, "Malformed", json_type),
        case(
            "infinity",
            "/predict",
            encoded.replace(b"245.0", b"Infinity"),
            400,
            "Malformed JSON",
            json_type,
        ),
        case(
            "overflow-to-infinity",
            "/predict",
            encoded.replace(b"245.0", b"1e999"),
            422,
            "$.engine_power",
            json_type,
        ),
        case(
            "wrong-content-type",
            "/predict",
            encoded,
            415,
            "application/json",
            {"content-type": "text/plain"},
        ),
        case(
            "form-content-type",
            "/predict/batch",
            encoded,
            415,
            "application/json",
            {"content-type": "application/x-www-form-urlencoded"},
        ),
        case("body-too-large", "/predict", b" " * 5000 + encoded, 413, "Too Large", json_type),
        case("empty-batch", "/predict/batch", b'{"cars": []}', 422, "$.cars", json_type),
        case(
            "bare-list-batch", "/predict/batch", b"[" + encoded + b"]", 422, "`object`", json_type
        ),
        case(
            "batch-over-limit",
            "/predict/batch",
            b'{"cars": [' + b",".join([encoded] * 4) + b"]}",
            422,
            "Expected at most 3 cars, got 4",
            json_type,
        ),
        case(
            "bad-car-in-batch",
            "/predict/batch",
            b'{"cars": [' + encoded + b"," + encoded.replace(b"2010", b'"x"') + b"]}",
            422,
            "$.cars[1].model_year",
            json_type,
        ),
    ]


@pytest.mark.parametrize(("path", "body", "headers", "status", "needle"), bad_input_cases())
def test_bad_input_is_a_4xx_json_error(
    model_bundle: Path, path: str, body: bytes, headers: dict[str, str], status: int, needle: str
) -> None:
    """Each kind of bad input gets its 4xx status and a JSON body naming the field and reason."""
    with make_client(model_bundle, batch_limit=3, max_body_bytes=4096) as test_client:
        response = test_client.post(path, content=body, headers=headers)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert needle in response.json()["detail"]
        metrics = test_client.get("/metrics").text
        assert f'carprice_http_requests_total{{endpoint="{path}",status="{status}"}} 1.0' in metrics
        assert 'status="5' not in metrics


def test_reload_endpoint_needs_token(model_bundle: Path) -> None:
    """POST /admin/reload is 403 without a configured token and 401 with a wrong one."""
    with make_client(model_bundle) as test_client:
        assert test_client.post("/admin/reload").status_code == 403
    with make_client(model_bundle, reload_token="s" * 32) as test_client:
        assert test_client.post("/admin/reload").status_code == 401
        wrong = {"authorization": "Bearer " + "x" * 32}
        assert test_client.post("/admin/reload", headers=wrong).status_code == 401


def test_reload_endpoint_swaps_and_rejects(
    tmp_path: Path, bundle_writer: Callable[..., Path], car_payload: dict[str, Any]
) -> None:
    """A valid new bundle replaces the model; a corrupt one is refused and the old one serves."""
    token = {"authorization": "Bearer " + "t" * 32}
    bundle_writer(tmp_path, model_version="1")
    with make_client(tmp_path, reload_token="t" * 32) as test_client:
        before = test_client.post("/predict", json=car_payload).json()
        bundle_writer(tmp_path, model_version="2", bias=-127.0)
        reloaded = test_client.post("/admin/reload", headers=token)
        assert reloaded.json() == {"reloaded": True, "model_version": "2", "detail": None}
        after = test_client.post("/predict", json=car_payload).json()
        assert after["model_version"] == "2"
        assert after["price_rub"] == pytest.approx(before["price_rub"] * math.exp(0.6), rel=1e-5)

        (tmp_path / "model.onnx").write_bytes(b"not a model")
        refused = test_client.post("/admin/reload", headers=token)
        assert refused.status_code == 409
        assert "sha256" in refused.json()["detail"]
        assert test_client.post("/predict", json=car_payload).json() == after
        assert test_client.get("/model").json()["model_version"] == "2"
        metrics = test_client.get("/metrics").text
        assert 'carprice_model_loads_total{outcome="failure"} 1.0' in metrics
        assert 'carprice_model_info{model_name="car-price",model_version="1"' in metrics


def test_poller_picks_up_new_bundle(
    tmp_path: Path, bundle_writer: Callable[..., Path], car_payload: dict[str, Any]
) -> None:
    """With polling on, a new bundle in the model dir is served without any request to reload."""
    import time

    bundle_writer(tmp_path, model_version="1")
    with make_client(tmp_path, reload_poll_s=0.05) as test_client:
        assert test_client.post("/predict", json=car_payload).json()["model_version"] == "1"
        bundle_writer(tmp_path, model_version="2")
        deadline = time.monotonic() + 10
        while test_client.get("/ready").json()["model_version"] != "2":
            assert time.monotonic() < deadline, "the new bundle was never loaded"
            time.sleep(0.05)
        assert test_client.post("/predict", json=car_payload).json()["model_version"] == "2"
