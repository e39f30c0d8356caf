"""The HTTP routes, thin: decode the body, predict, return the response Struct.

Errors on the way are raised, not answered here: `errors` maps them to responses. What the ops
routes answer with a non-200 (not ready yet, a refused reload) is their result, not an error.
"""

import hmac
from typing import Any, Final

from litestar import MediaType, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import ResponseHeader
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_409_CONFLICT, HTTP_503_SERVICE_UNAVAILABLE
from litestar.types import Guard

from inference.decode import BatchRequest, read_car, read_cars
from inference.encode import (
    BatchResponse,
    HealthResponse,
    PredictResponse,
    ReadyResponse,
    ReloadResponse,
)
from inference.errors import RETRY_AFTER_S
from inference.metrics import Metrics
from inference.model import BundleError
from inference.openapi import error_responses, json_body_operation
from inference.predict import Predictor
from inference.prediction_log import request_id
from inference.reload import ModelHolder
from inference.rollout_metrics import MODEL_VERSION_HEADER
from inference.settings import Settings
from shared_schema import SCHEMA_VERSION
from shared_schema.prediction_log import REQUEST_ID_HEADER
from shared_schema.rating import Listing

PREDICT_PATH: Final = "/predict"
BATCH_PATH: Final = "/predict/batch"
#: The routes that run the model: the ones admission may turn away.
PREDICTION_PATHS: Final = (PREDICT_PATH, BATCH_PATH)


def prediction_routes(settings: Settings, predictor: Predictor) -> list[HTTPRouteHandler]:
    """`POST /predict` and `POST /predict/batch`, each answer carrying its `X-Request-ID`."""
    # The id the prediction log records the answer under; the client's own if it sent one.
    id_header = ResponseHeader(
        name=REQUEST_ID_HEADER,
        documentation_only=True,
        description=f"The request's id in the prediction log: the client's {REQUEST_ID_HEADER} if "
        "it sent a valid one (1-64 of A-Z a-z 0-9 . _ : -), else 32 random hex digits.",
    )
    version_header = ResponseHeader(
        name=MODEL_VERSION_HEADER,
        documentation_only=True,
        description="The model version that priced the answer (the champion's, or the "
        "challenger's for a request in the canary share); the body's model_version too.",
    )
    # Every status a prediction route answers besides 200 (decode's 4xx, errors' 503).
    prediction_errors = error_responses(400, 408, 413, 415, 422, 503)

    @post(
        PREDICT_PATH,
        status_code=HTTP_200_OK,
        operation_class=json_body_operation(Listing),
        response_headers=[id_header, version_header],
        responses=prediction_errors,
        tags=["predict"],
    )
    async def predict(request: Request[Any, Any, Any]) -> Response[PredictResponse]:
        """Price one car in RUB; rate its asking price against the market, if one is sent."""
        answer_id = request_id(request)
        car = await read_car(request, settings)
        prediction, ratings = await predictor.price_one(car, answer_id)
        answer = PredictResponse.of(prediction, ratings)
        headers = {REQUEST_ID_HEADER: answer_id, MODEL_VERSION_HEADER: prediction.version}
        return Response(answer, headers=headers)

    @post(
        BATCH_PATH,
        status_code=HTTP_200_OK,
        operation_class=json_body_operation(BatchRequest, max_items={"cars": settings.batch_limit}),
        response_headers=[id_header, version_header],
        responses=prediction_errors,
        tags=["predict"],
    )
    async def predict_batch(request: Request[Any, Any, Any]) -> Response[BatchResponse]:
        """Price a list of cars in RUB, in order, in one model run; rate asking prices sent."""
        answer_id = request_id(request)
        cars = await read_cars(request, settings)
        prediction, ratings = await predictor.price_many(cars, answer_id)
        answer = BatchResponse.of(prediction, ratings)
        headers = {REQUEST_ID_HEADER: answer_id, MODEL_VERSION_HEADER: prediction.version}
        return Response(answer, headers=headers)

    return [predict, predict_batch]


def ops_routes(settings: Settings, metrics: Metrics, holder: ModelHolder) -> list[HTTPRouteHandler]:
    """Health, readiness, the manifest, Prometheus metrics and the token-protected reload."""

    @get("/health", tags=["ops"])
    async def health() -> HealthResponse:
        """The process is alive (says nothing about the model)."""
        return HealthResponse(status="ok")

    @get(
        "/ready",
        responses={
            HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(
                data_container=ReadyResponse,
                description="No model loaded and warm yet.",
                generate_examples=False,
            )
        },
        tags=["ops"],
    )
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

    @get("/model", responses=error_responses(HTTP_503_SERVICE_UNAVAILABLE), tags=["ops"])
    async def model_manifest() -> dict[str, Any]:
        """The served bundle's manifest, as exported."""
        return holder.model().manifest_raw

    @get("/metrics", media_type=MediaType.TEXT, tags=["ops"], include_in_schema=False)
    async def metrics_endpoint() -> Response[bytes]:
        """Prometheus text exposition, merged over all workers."""
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @post(
        "/admin/reload",
        status_code=HTTP_200_OK,
        guards=[reload_token_guard(settings.reload_token)],
        responses={
            **error_responses(401, 403),
            HTTP_409_CONFLICT: ResponseSpec(
                data_container=ReloadResponse,
                description="The bundle is unfit; the current model keeps serving.",
                generate_examples=False,
            ),
        },
        tags=["ops"],
    )
    async def admin_reload() -> Response[ReloadResponse]:
        """Reload the bundle in the model dir now (this worker); needs the bearer token."""
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
                status_code=HTTP_409_CONFLICT,
            )
        return Response(ReloadResponse(reloaded=True, model_version=model.version))

    return [health, ready, model_manifest, metrics_endpoint, admin_reload]


def reload_token_guard(token: str | None) -> Guard:
    """A guard letting through only requests bearing `token`: 403 when unset, 401 otherwise."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
        if token is None:
            raise PermissionDeniedException("reload endpoint disabled: no RELOAD_TOKEN")
        scheme, _, offered = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(offered.encode(), token.encode()):
            raise NotAuthorizedException(
                "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    return guard
