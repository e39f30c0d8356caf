"""The Litestar application: `create_app(settings)` builds it, the lifespan loads the model."""

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final, TypeVar

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.openapi import OpenAPIConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from inference.batching import MicroBatcher
from inference.metrics import Metrics
from inference.model import BundleError
from inference.reload import ModelHolder
from inference.routes import ops_routes, prediction_routes
from inference.settings import Settings
from shared_schema import SCHEMA_VERSION

logger = logging.getLogger(__name__)

RETRY_AFTER_S: Final = "1"
T = TypeVar("T")


def _metrics_middleware(metrics: Metrics) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware recording latency and status per route template."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            status = 500

            async def send_with_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            start = time.perf_counter()
            try:
                await app(scope, receive, send_with_status)
            finally:
                endpoint = scope.get("path_template") or "unmatched"
                metrics.request_duration.labels(endpoint).observe(time.perf_counter() - start)
                metrics.requests.labels(endpoint, str(status)).inc()

        return middleware

    return factory


def create_app(settings: Settings) -> Litestar:
    """Build the price API.

    Nothing is loaded here: the lifespan opens the model when the server starts.

    Args:
        settings: Validated server settings.

    Returns:
        The Litestar application.
    """
    metrics = Metrics()
    holder = ModelHolder(settings, metrics)
    batcher: MicroBatcher | None = None
    if settings.batch_enabled:
        batcher = MicroBatcher(
            holder.predict,
            metrics,
            max_rows=settings.batch_max_rows,
            window_us=settings.batch_window_us,
            queue_max=settings.queue_max,
            deadline_ms=settings.request_deadline_ms,
        )

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        metrics.model_ready.set(0)
        try:
            await holder.reload()
        except BundleError:
            # Stay up and unready: the poller picks the bundle up once a valid one appears.
            logger.exception("no servable model in %s at start-up", settings.model_dir)
        if batcher is not None:
            batcher.start()
        holder.start_polling()
        try:
            yield
        finally:
            await holder.stop_polling()
            if batcher is not None:
                await batcher.stop()
            metrics.worker_exit()

    app = Litestar(
        route_handlers=[
            *prediction_routes(settings, metrics, holder, batcher),
            *ops_routes(settings, metrics, holder),
        ],
        lifespan=[lifespan],
        middleware=[_metrics_middleware(metrics)],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Car price API",
            version=SCHEMA_VERSION,
            description="Used-car prices in RUB from the ONNX champion model.",
        ),
        logging_config=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.holder = holder
    return app


def create_app_from_env() -> Litestar:
    """Granian's factory target: settings from the environment, then `create_app`."""
    return create_app(Settings.from_env())


__all__ = ["create_app", "create_app_from_env"]
