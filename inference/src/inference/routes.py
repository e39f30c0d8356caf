"""The HTTP routes: request decoding, prediction endpoints and operations endpoints."""

import hmac
import logging
from typing import Annotated, Any, Final, TypeVar

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.exceptions import ClientException, HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_400_BAD_REQUEST,
    HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from msgspec import Meta

from inference.batching import MicroBatcher, RejectedError
from inference.metrics import Metrics
from inference.model import BundleError
from inference.openapi import json_body_operation
from inference.reload import ModelHolder, ModelNotReadyError
from inference.settings import Settings
from shared_schema import SCHEMA_VERSION, Car

logger = logging.getLogger(__name__)

RETRY_AFTER_S: Final = "1"
T = TypeVar("T")


class PredictResponse(msgspec.Struct, frozen=True):
    """The price of one car."""

    price_rub: float
    model_version: str


class BatchRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Several cars to price at once, in a JSON object so the format can grow."""

    cars: Annotated[list[Car], Meta(min_length=1)]


class BatchResponse(msgspec.Struct, frozen=True):
    """Prices in the order of the request's cars."""

    prices_rub: list[float]
    model_version: str


class HealthResponse(msgspec.Struct, frozen=True):
    """The process is alive."""

    status: str


class ReadyResponse(msgspec.Struct, frozen=True):
    """Whether a model is loaded and warm."""

    ready: bool
    model_version: str | None
    schema_version: str
    detail: str | None = None


class ReloadResponse(msgspec.Struct, frozen=True):
    """Outcome of a reload request."""

    reloaded: bool
    model_version: str | None
    detail: str | None = None


def _unavailable(detail: str) -> HTTPException:
    return HTTPException(
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
        detail=detail,
        headers={"Retry-After": RETRY_AFTER_S},
    )


_car_decoder: Final = msgspec.json.Decoder(Car)
_batch_decoder: Final = msgspec.json.Decoder(BatchRequest)


def invalid_input(path: str, message: str) -> ClientException:
    """A 422 naming where in the body the problem is and what it is."""
    return ClientException(
        status_code=HTTP_422_UNPROCESSABLE_ENTITY,
        detail=f"Invalid input at {path}: {message}",
        extra=[{"path": path, "message": message}],
    )


async def decode_body(request: Request[Any, Any, Any], decoder: msgspec.json.Decoder[T]) -> T:
    """Decode a JSON body strictly into `T`, or raise the 4xx the client deserves.

    Strict means no coercion: "120000" is not a mileage. NaN and Infinity are not JSON and
    fail as malformed; a number too large for a float fails its field's range.

    Raises:
        ClientException: 415 for a non-JSON content type, 413 (from Litestar) for a body over
            the limit, 400 for malformed JSON, 422 for a body that breaks the schema.
    """
    media_type = request.content_type[0]
    if media_type != MediaType.JSON:
        raise ClientException(
            status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"Content-Type must be application/json, got {media_type!r}",
        )
    body = await request.body()
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as error:
        message, _, path = str(error).rpartition(" - at `")
        if not message:  # the error concerns the whole document
            raise invalid_input("$", str(error)) from None
        raise invalid_input(path.rstrip("`"), message) from None
    except msgspec.DecodeError as error:
        raise ClientException(
            status_code=HTTP_400_BAD_REQUEST, detail=f"Malformed JSON: {error}"
        ) from None


def prediction_routes(
    settings: Settings, metrics: Metrics, holder: ModelHolder, batcher: MicroBatcher | None
) -> list[HTTPRouteHandler]:
    """`POST /predict` (micro-batched when a batcher is given) and `POST /predict/batch`."""

    async def predict_one(car: Car) -> tuple[float, str]:
        metrics.inflight.inc()
        try:
            if batcher is not None:
                return await batcher.predict(car)
            prices, version = holder.predict([car])
            return prices[0], version
        except RejectedError as error:
            metrics.rejected.labels(error.reason).inc()
            raise _unavailable(f"server overloaded ({error.reason}), retry later") from None
        except ModelNotReadyError:
            raise _unavailable("model not loaded yet") from None
        finally:
            metrics.inflight.dec()

    @post(
        "/predict",
        status_code=HTTP_200_OK,
        operation_class=json_body_operation(Car),
        tags=["predict"],
    )
    async def predict(request: Request[Any, Any, Any]) -> PredictResponse:
        """Price one car in RUB."""
        price, version = await predict_one(await decode_body(request, _car_decoder))
        return PredictResponse(price_rub=price, model_version=version)

    @post(
        "/predict/batch",
        status_code=HTTP_200_OK,
        operation_class=json_body_operation(BatchRequest),
        tags=["predict"],
    )
    async def predict_batch(request: Request[Any, Any, Any]) -> BatchResponse:
        """Price a list of cars in RUB, in order, in one model run."""
        cars = (await decode_body(request, _batch_decoder)).cars
        if len(cars) > settings.batch_limit:
            raise invalid_input(
                "$.cars", f"Expected at most {settings.batch_limit} cars, got {len(cars)}"
            )
        metrics.inflight.inc()
        try:
            prices, version = holder.predict(cars)
        except ModelNotReadyError:
            raise _unavailable("model not loaded yet") from None
        finally:
            metrics.inflight.dec()
        return BatchResponse(prices_rub=prices, model_version=version)

    return [predict, predict_batch]


def ops_routes(settings: Settings, metrics: Metrics, holder: ModelHolder) -> list[HTTPRouteHandler]:
    """Health, readiness, the manifest, Prometheus metrics and the token-protected reload."""

    @get("/health", tags=["ops"])
    async def health() -> HealthResponse:
        """The process is alive (says nothing about the model)."""
        return HealthResponse(status="ok")

    @get("/ready", tags=["ops"])
    async def ready() -> Response[ReadyResponse]:
        """200 once a model is loaded and warm, 503 before."""
        model = holder.current
        if model is None:
            body = ReadyResponse(
                ready=False,
                model_version=None,
                schema_version=SCHEMA_VERSION,
                detail=holder.last_error or "model not loaded yet",
            )
            return Response(
                body,
                status_code=HTTP_503_SERVICE_UNAVAILABLE,
                headers={"Retry-After": RETRY_AFTER_S},
            )
        return Response(
            ReadyResponse(ready=True, model_version=model.version, schema_version=SCHEMA_VERSION)
        )

    @get("/model", tags=["ops"])
    async def model_manifest() -> dict[str, Any]:
        """The served bundle's manifest, as exported."""
        try:
            return holder.model().manifest_raw
        except ModelNotReadyError:
            raise _unavailable("model not loaded yet") from None

    @get("/metrics", media_type=MediaType.TEXT, tags=["ops"], include_in_schema=False)
    async def metrics_endpoint() -> Response[bytes]:
        """Prometheus text exposition, merged over all workers."""
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @post("/admin/reload", status_code=HTTP_200_OK, tags=["ops"])
    async def admin_reload(request: Request[Any, Any, Any]) -> Response[ReloadResponse]:
        """Reload the bundle in the model dir now (this worker); needs the bearer token."""
        _check_token(settings, request.headers.get("authorization", ""))
        try:
            model = await holder.reload()
        except BundleError as error:
            current = holder.current
            return Response(
                ReloadResponse(
                    reloaded=False,
                    model_version=current.version if current else None,
                    detail=str(error),
                ),
                status_code=409,
            )
        return Response(ReloadResponse(reloaded=True, model_version=model.version))

    return [health, ready, model_manifest, metrics_endpoint, admin_reload]


def _check_token(settings: Settings, authorization: str) -> None:
    if settings.reload_token is None:
        raise ClientException(status_code=403, detail="reload endpoint disabled: no RELOAD_TOKEN")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.encode(), settings.reload_token.encode()
    ):
        raise ClientException(
            status_code=401,
            detail="missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
