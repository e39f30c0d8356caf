"""The Litestar app: `create_app(settings)` wires the parts; the lifespan loads the model."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import onnxruntime as ort
from litestar import Litestar
from litestar.openapi import OpenAPIConfig

from inference.admission import InFlight, LagMonitor, admission_middleware
from inference.announce import announce_once_serving
from inference.challenger import ChallengerHolder
from inference.errors import EXCEPTION_HANDLERS, RETRY_AFTER_S
from inference.metrics import Metrics, metrics_middleware
from inference.model import BundleError
from inference.multiprocess import multiprocess_dir
from inference.page import page_routes
from inference.predict import Predictor
from inference.reload import ModelHolder
from inference.rollout_metrics import RolloutMetrics, version_middleware
from inference.routes import PREDICTION_PATHS, ops_routes, prediction_routes
from inference.settings import Settings
from shared_schema import SCHEMA_VERSION

logger = logging.getLogger(__name__)


def drain_seconds(settings: Settings) -> float:
    """The longest a request can take, so the longest shutdown waits for those in flight.

    Its body, its wait in the queue, then a run. A Kubernetes pod's termination grace period
    must exceed it (k8s/base/deployment.yaml).
    """
    return settings.body_timeout_s + settings.request_deadline_ms / 1e3 + 1.0


def create_app(settings: Settings) -> Litestar:
    """Build the price API.

    Nothing is loaded here: the lifespan opens the model when the server starts.

    Args:
        settings: Validated server settings.

    Returns:
        The Litestar application.
    """
    metrics = Metrics()
    rollout = RolloutMetrics(metrics)
    holder = ModelHolder(settings, metrics)
    challenger = ChallengerHolder(settings, rollout)
    predictor = Predictor(settings, holder, metrics, challenger, rollout)
    lag = LagMonitor(settings.shed_lag_ms)
    inflight = InFlight()
    drain_s = drain_seconds(settings)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        # The events onnxruntime would send later (sessions, errors) stay off however the app
        # was started; the uploader itself is kept from starting by car-serve (cli.py).
        ort.disable_telemetry_events()
        for pid in metrics.reap_dead_workers():
            logger.warning("dropped the live metrics of worker %d, which died unannounced", pid)
        metrics.model_ready.set(0)
        try:
            await holder.load_at_start()
        except BundleError:
            # Stay up and unready: the poller picks the bundle up once a valid one appears.
            logger.exception("no servable model in %s at start-up", settings.model_dir)
        await challenger.refresh()
        predictor.start()
        holder.start_polling()
        challenger.start_polling()
        lag.start()
        # `make run` ends with the page's address, said once every worker serves.
        announce_once_serving(settings, multiprocess_dir())
        try:
            yield
        finally:
            if not await inflight.drained(drain_s):
                logger.warning("shutting down with %d requests still in flight", inflight.count)
            await lag.stop()
            await holder.stop_polling()
            await challenger.stop_polling()
            await predictor.stop()
            metrics.worker_exit()

    app = Litestar(
        route_handlers=[
            *prediction_routes(settings, predictor),
            *ops_routes(settings, metrics, holder),
            *page_routes(holder),
        ],
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Car price API",
            version=SCHEMA_VERSION,
            description="Used-car prices in RUB from the ONNX champion model.",
        ),
        logging_config=None,
    )
    # Litestar runs app-level middleware inside each route handler, so a request that matches no
    # route (404) or no method of one (405) would go uncounted: the metrics wrap the app's whole
    # ASGI handler (router and exception handlers) instead, and admission sits in front of the
    # router, where turning a request away costs least.
    admission = admission_middleware(lag, metrics, PREDICTION_PATHS, RETRY_AFTER_S)
    by_version = version_middleware(rollout)
    app.asgi_handler = inflight.middleware(
        metrics_middleware(metrics)(by_version(admission(app.asgi_handler)))
    )
    app.state.lag_monitor = lag
    return app


def create_app_from_env() -> Litestar:
    """Granian's factory target: settings from the environment, then `create_app`."""
    return create_app(Settings.from_env())
