"""Decode: a request's JSON body into cars, or the 4xx error the client deserves.

Bodies are decoded strictly by decoders built once: no coercion ("120000" is not a mileage),
NaN and Infinity are not JSON and fail as malformed, and a number too large for a float fails
its field's range. Errors are Litestar's `ClientException`, rendered by its own handler:
415 for a non-JSON content type, 413 (raised by Litestar while reading) for a body over
`MAX_BODY_BYTES`, 400 for malformed JSON (invalid UTF-8 included), 422 naming the JSON path
for a body that breaks the schema.
"""

from typing import Annotated, Any, Final, TypeVar

import msgspec
from litestar import MediaType, Request
from litestar.exceptions import ClientException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    HTTP_422_UNPROCESSABLE_ENTITY,
)
from msgspec import Meta

from shared_schema import Car

T = TypeVar("T")


class BatchRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Several cars to price at once, in a JSON object so the format can grow."""

    cars: Annotated[list[Car], Meta(min_length=1)]


_car_decoder: Final = msgspec.json.Decoder(Car)
_batch_decoder: Final = msgspec.json.Decoder(BatchRequest)


async def read_car(request: Request[Any, Any, Any]) -> Car:
    """The one car in the body of `POST /predict`.

    Raises:
        ClientException: 400, 413, 415 or 422 (see the module docstring).
    """
    _check_json(request)
    return _decode(await request.body(), _car_decoder)


async def read_cars(request: Request[Any, Any, Any], limit: int) -> list[Car]:
    """The cars in the body of `POST /predict/batch`: 1 to `limit` of them.

    Raises:
        ClientException: 400, 413, 415 or 422 (see the module docstring); 422 also for more
            than `limit` cars.
    """
    _check_json(request)
    cars = _decode(await request.body(), _batch_decoder).cars
    if len(cars) > limit:
        raise _invalid_input("$.cars", f"Expected at most {limit} cars, got {len(cars)}")
    return cars


def _check_json(request: Request[Any, Any, Any]) -> None:
    media_type = request.content_type[0]
    if media_type != MediaType.JSON:
        raise ClientException(
            status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"Content-Type must be application/json, got {media_type!r}",
        )


def _decode(body: bytes, decoder: msgspec.json.Decoder[T]) -> T:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as error:
        message, _, path = str(error).rpartition(" - at `")
        if not message:  # the error concerns the whole document
            raise _invalid_input("$", str(error)) from None
        raise _invalid_input(path.rstrip("`"), message) from None
    except msgspec.DecodeError as error:
        raise _malformed(str(error)) from None
    except UnicodeDecodeError as error:
        # msgspec lets a string's or key's invalid UTF-8 through as Python's own error.
        raise _malformed(f"invalid UTF-8 in a string: {error.reason}") from None


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
