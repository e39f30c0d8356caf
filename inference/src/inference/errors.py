"""The app's exception handlers: each error kind the hot path raises mapped to its response once.

Bodies keep Litestar's error shape (`{"status_code": ..., "detail": ...}`), like the 4xx errors
`decode` raises, so a client reads every error the same way.
"""

from typing import Any, Final

from litestar import Request, Response
from litestar.exceptions import ServiceUnavailableException
from litestar.exceptions.responses import create_exception_response
from litestar.types import ExceptionHandlersMap

from inference.batch_queue import OverloadedError
from inference.decode import ClientDisconnectedError
from inference.reload import ModelNotReadyError

#: Seconds a client told "not now" (503) should wait before retrying.
RETRY_AFTER_S: Final = "1"
#: nginx's "client closed request": the status recorded for a request whose client hung up
#: before its body was read. Nobody receives it; the metrics count it as the client's (a 4xx),
#: so hanging up cannot inflate the 5xx ratio the availability alerts read.
CLIENT_CLOSED_REQUEST: Final = 499


def unavailable(request: Request[Any, Any, Any], detail: str) -> Response[Any]:
    """A 503 with Retry-After in Litestar's error shape."""
    error = ServiceUnavailableException(detail=detail, headers={"Retry-After": RETRY_AFTER_S})
    return create_exception_response(request, error)


def model_not_ready(request: Request[Any, Any, Any], _: ModelNotReadyError) -> Response[Any]:
    """No model has loaded yet: 503, retry later."""
    return unavailable(request, "model not loaded yet")


def overloaded(request: Request[Any, Any, Any], error: OverloadedError) -> Response[Any]:
    """The batch queue is full or the request's deadline passed: 503, retry later."""
    return unavailable(request, f"server overloaded ({error.reason}), retry later")


def client_disconnected(_: Request[Any, Any, Any], __: ClientDisconnectedError) -> Response[Any]:
    """The client hung up mid-body: an empty 499, for the metrics only."""
    return Response(content=None, status_code=CLIENT_CLOSED_REQUEST)


EXCEPTION_HANDLERS: Final[ExceptionHandlersMap] = {
    ModelNotReadyError: model_not_ready,
    OverloadedError: overloaded,
    ClientDisconnectedError: client_disconnected,
}
