"""Decode: a request's JSON body into cars, or the 4xx error the client deserves.

The body is read here, bounded in size and time, before anything else looks at it:

* over `MAX_BODY_BYTES` is a 413. A client that sends its whole body before reading the
  answer (Python's urllib) would see the connection reset, not the 413, if the server answered
  and closed with the body unread; so an over-limit body is read and thrown away up to
  `DRAIN_FACTOR` times the limit, then answered. Beyond that, or when the client waits for
  `100 Continue` before sending, the 413 goes out at once and the connection is closed;
* not all there within `BODY_TIMEOUT_S` (a client trickling bytes to hold a connection) is a
  408, and the connection is closed;
* a client that hangs up mid-body is `ClientDisconnectedError`: no one is left to answer, and
  `errors` records it as 499, not as a server error;
* a non-JSON content type, or any `Content-Encoding` but identity (compressed bodies are not
  accepted: a 2 MB body needs no compression, and inflating one is a decompression bomb's
  door), is a 415 with `Accept-Encoding: identity`.

Then it is decoded strictly by decoders built once (the brand, model and colour patterns are
checked after decoding, each distinct value once: `patterns`): no coercion ("120000" is not a
mileage), NaN and Infinity are not JSON and fail as malformed, invalid UTF-8 is malformed, a
number too large for a float fails its field's range. An integer field takes any JSON number
with a zero fraction (4, 4.0, 4e0): that is what JSON Schema's `integer` in the OpenAPI document
means, so the server accepts what its schema says (4.5 is still a 422). A car is read as a
`shared_schema.rating.Listing`: the `Car` fields and an optional asking price, which is a 422
naming `asking_price_rub` when it is not a number in (0, 10⁹]. Errors are Litestar's
`ClientException`: 400 for malformed JSON, 422 naming the JSON path for a body that breaks
the schema.
"""

import asyncio
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeVar, cast

import msgspec
from litestar import MediaType, Request
from litestar.exceptions import ClientException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_408_REQUEST_TIMEOUT,
    HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    HTTP_422_UNPROCESSABLE_ENTITY,
)
from msgspec import Meta

from inference.patterns import PatternMemo, unpatterned
from inference.settings import Settings
from shared_schema.rating import Listing

if TYPE_CHECKING:
    from litestar.types.asgi_types import HTTPReceiveMessage

T = TypeVar("T")

#: An over-limit body is read and discarded up to this many times `MAX_BODY_BYTES` before the
#: 413, so a client that writes its whole body first still reads the answer.
DRAIN_FACTOR: Final = 4

_CLOSE: Final = {"Connection": "close"}
_INT_GOT_FLOAT: Final = "Expected `int`, got `float`"
#: Levels from the document down to a car's fields: document, `cars`, a car, its fields.
_CAR_DEPTH: Final = 3


class BatchRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Several cars to price at once, in a JSON object so the format can grow."""

    cars: Annotated[list[Listing], Meta(min_length=1)]


class ClientDisconnectedError(Exception):
    """The client hung up before its request body was complete."""


_DecodedListing, _PATTERNS = unpatterned(Listing)


class _DecodedBatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`BatchRequest` as decoded: its cars' patterns are left to `_memo` (`patterns`)."""

    cars: Annotated[list[_DecodedListing], Meta(min_length=1)]  # type: ignore[valid-type]


_car_decoder: Final = msgspec.json.Decoder(_DecodedListing)
_batch_decoder: Final = msgspec.json.Decoder(_DecodedBatch)
_memo: Final = PatternMemo(_PATTERNS)
# The schema's own decoders, for bodies refused: msgspec then names the fault it always named.
_strict_car_decoder: Final = msgspec.json.Decoder(Listing)
_strict_batch_decoder: Final = msgspec.json.Decoder(BatchRequest)


async def read_car(request: Request[Any, Any, Any], settings: Settings) -> Listing:
    """The one car (and its asking price, if sent) in the body of `POST /predict`.

    Raises:
        ClientException: 400, 408, 413, 415 or 422 (see the module docstring).
        ClientDisconnectedError: The client hung up mid-body.
    """
    body = await read_body(request, settings)
    car: Listing = _decode(body, _car_decoder, _strict_car_decoder)
    _check_patterns([car], "$", body, _strict_car_decoder)
    return car


async def read_cars(request: Request[Any, Any, Any], settings: Settings) -> list[Listing]:
    """The cars in the body of `POST /predict/batch`: 1 to `BATCH_LIMIT` of them.

    Raises:
        ClientException: 400, 408, 413, 415 or 422 (see the module docstring); 422 also for
            more than `BATCH_LIMIT` cars.
        ClientDisconnectedError: The client hung up mid-body.
    """
    body = await read_body(request, settings)
    cars: list[Listing] = _decode(body, _batch_decoder, _strict_batch_decoder).cars
    _check_patterns(cars, "$.cars[{}]", body, _strict_batch_decoder)
    if len(cars) > settings.batch_limit:
        raise _invalid_input(
            "$.cars", f"Expected at most {settings.batch_limit} cars, got {len(cars)}"
        )
    return cars


def _check_patterns(
    cars: list[Listing], path: str, body: bytes, strict: msgspec.json.Decoder[Any]
) -> None:
    """`PatternMemo.check` on decoded cars; a mismatch is the 422 msgspec's own decoder gives.

    The body is decoded again by the schema's own decoder (`strict`), so the fault named is the
    one msgspec names: the first in the document, whatever else the body has wrong.
    """
    try:
        _memo.check(cars, path)
    except msgspec.ValidationError as error:
        _decode(body, strict, strict)
        raise _validation_error(error) from None  # the schema's decoder took it: not expected


async def read_body(request: Request[Any, Any, Any], settings: Settings) -> bytes:
    """The whole JSON body, within `MAX_BODY_BYTES` and `BODY_TIMEOUT_S`.

    Raises:
        ClientException: 408, 413 or 415 (see the module docstring).
        ClientDisconnectedError: The client hung up mid-body.
    """
    limit = settings.max_body_bytes
    declared = request.content_length  # a malformed header is Litestar's 400
    refusal = _refusal(request, declared, limit)
    expects_continue = request.headers.get("expect", "").lower() == "100-continue"
    if refusal is not None and (
        expects_continue or (declared is not None and declared > limit * DRAIN_FACTOR)
    ):
        # The client has not sent the body yet, or sending it would cost more than we read.
        raise _closing(refusal)
    try:
        async with asyncio.timeout(settings.body_timeout_s):
            body = await _receive(request, limit)
    except TimeoutError:
        raise ClientException(
            status_code=HTTP_408_REQUEST_TIMEOUT,
            detail=f"Request body not received within {settings.body_timeout_s:g} s",
            headers=dict(_CLOSE),
        ) from None
    if refusal is not None:
        raise refusal
    if body is None:
        raise _too_large(limit)
    return body


def _refusal(
    request: Request[Any, Any, Any], declared: int | None, limit: int
) -> ClientException | None:
    """What the headers alone say is wrong with the request, if anything."""
    media_type = request.content_type[0]
    if media_type != MediaType.JSON:
        return ClientException(
            status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"Content-Type must be application/json, got {media_type!r}",
        )
    coding = request.headers.get("content-encoding", "").strip().lower()
    if coding not in {"", "identity"}:
        return ClientException(
            status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"Content-Encoding {coding!r} is not accepted: send the body uncompressed",
            headers={"Accept-Encoding": "identity"},
        )
    if declared is not None and declared > limit:
        return _too_large(limit)
    return None


async def _receive(request: Request[Any, Any, Any], limit: int) -> bytes | None:
    """Read the body to its end: its bytes, or None once it is over `limit` (then discarded).

    Raises:
        ClientException: 413 with the connection closed beyond `DRAIN_FACTOR` times the limit.
        ClientDisconnectedError: The client hung up first.
    """
    chunks: list[bytes] = []
    received = 0
    while True:
        message = cast("HTTPReceiveMessage", await request.receive())
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit * DRAIN_FACTOR:
            raise _closing(_too_large(limit))
        if received <= limit:
            chunks.append(chunk)
        else:
            chunks.clear()
        if not message.get("more_body", False):
            return b"".join(chunks) if received <= limit else None


def _closing(error: ClientException) -> ClientException:
    """The error with `Connection: close`: the rest of the body is not read."""
    error.headers = {**(error.headers or {}), **_CLOSE}
    return error


def _too_large(limit: int) -> ClientException:
    return ClientException(
        status_code=HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        detail=f"Request Entity Too Large: the body is over MAX_BODY_BYTES = {limit} bytes",
    )


def _decode(body: bytes, decoder: msgspec.json.Decoder[T], strict: msgspec.json.Decoder[Any]) -> T:
    """`decoder`'s value of `body`; for a body it refuses, the schema's own decoder's verdict.

    `strict` decodes the schema's type (patterns and all), so a refused body gets the error
    msgspec has always given it, and whole floats in integer fields are retried as before.
    Given `strict` as `decoder`, the body is decoded once.
    """
    try:
        if decoder is not strict:
            try:
                return decoder.decode(body)
            except msgspec.ValidationError:
                pass  # the schema's own decoder gives the verdict
        try:
            return cast("T", strict.decode(body))
        except msgspec.ValidationError as error:
            if not str(error).startswith(_INT_GOT_FLOAT):
                raise
            return cast("T", _decode_whole_floats_as_ints(body, strict.type, error))
    except msgspec.ValidationError as error:
        raise _validation_error(error) from None
    except msgspec.DecodeError as error:
        raise _malformed(str(error)) from None
    except UnicodeDecodeError as error:
        # msgspec lets a string's or key's invalid UTF-8 through as Python's own error.
        raise _malformed(f"invalid UTF-8 in a string: {error.reason}") from None


def _decode_whole_floats_as_ints(
    body: bytes, body_type: type[T], first_error: msgspec.ValidationError
) -> T:
    """Decode again with every whole-number float (4.0, 4e0) of a car read as an int.

    The slow path, taken only for a body an integer field refused as a float: valid requests
    never pay for it. Float fields take ints, so converting every whole float is safe.

    Raises:
        msgspec.ValidationError: The body breaks the schema otherwise (`first_error` if it is
            nested too deep to read untyped).
        msgspec.DecodeError: The rest of the body is not JSON.
    """
    try:
        document = msgspec.json.decode(body)
    except RecursionError:
        raise first_error from None
    return msgspec.convert(_whole_floats_as_ints(document, _CAR_DEPTH), body_type)


def _whole_floats_as_ints(node: Any, depth: int) -> Any:
    # Cars sit at most two levels down ({"cars": [car]}); deeper values are no car field's.
    if isinstance(node, float):
        return int(node) if node.is_integer() else node
    if depth == 0:
        return node
    if isinstance(node, dict):
        return {key: _whole_floats_as_ints(value, depth - 1) for key, value in node.items()}
    if isinstance(node, list):
        return [_whole_floats_as_ints(item, depth - 1) for item in node]
    return node


def _validation_error(error: msgspec.ValidationError) -> ClientException:
    message, _, path = str(error).rpartition(" - at `")
    if not message:  # the error concerns the whole document
        return _invalid_input("$", str(error))
    return _invalid_input(path.rstrip("`"), message)


def _malformed(reason: str) -> ClientException:
    """A 400 for a body that is not JSON."""
    return ClientException(status_code=HTTP_400_BAD_REQUEST, detail=f"Malformed JSON: {reason}")


def _invalid_input(path: str, message: str) -> ClientException:
    """A 422 naming where in the body the problem is and what it is."""
    return ClientException(
        status_code=HTTP_422_UNPROCESSABLE_ENTITY,
        detail=f"Invalid input at {path}: {message}",
        extra=[{"path": path, "message": message}],
    )
