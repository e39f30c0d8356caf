"""Encode: the response bodies, as msgspec Structs that Litestar encodes to JSON.

Returning Structs (not dicts) keeps encoding to msgspec's fast path and documents each
response in the OpenAPI schema. Error bodies are Litestar's (`errors`, `decode`);
`ErrorResponse` documents their shape.
"""

import msgspec


class PredictResponse(msgspec.Struct, frozen=True):
    """The price of one car."""

    price_rub: float
    model_version: str


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


class ErrorLocation(msgspec.Struct, frozen=True):
    """Where a 422 found the body at fault, and why."""

    path: str
    message: str


class ErrorResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    """Every error's body, in Litestar's shape: the status, what is wrong, where (422 only)."""

    status_code: int
    detail: str
    extra: list[ErrorLocation] | None = None
