"""The OpenAPI document's request bodies and error responses, as the server really answers.

The prediction handlers read the raw body and decode it with a prebuilt, strict msgspec
decoder (one pass, exact error paths, no string-to-number coercion), so Litestar does not see
a `data` parameter to document. These operation classes put the msgspec JSON schema of the
body type back into the OpenAPI document. `error_responses` documents each non-200 status a
route answers, with its body; schemathesis holds the document to what the server does
(tests/integration/test_openapi_conformance.py).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema

from inference.encode import ErrorResponse

#: What each error status means, wherever a route answers it.
ERRORS: Final[Mapping[int, str]] = {
    400: "Malformed JSON (invalid UTF-8, NaN, an empty body) or a malformed Content-Length.",
    401: "Missing or wrong bearer token (WWW-Authenticate: Bearer).",
    403: "The reload endpoint is off: no RELOAD_TOKEN is configured.",
    408: "The body did not arrive within BODY_TIMEOUT_S; the connection is closed.",
    413: "The body is over MAX_BODY_BYTES.",
    415: "Content-Type is not application/json, or the body is compressed "
    "(Content-Encoding other than identity; Accept-Encoding: identity says so).",
    422: "The body breaks the schema: `extra` names the JSON path and the reason.",
    503: "No model loaded yet, or overloaded (queue full, deadline passed); retry after "
    "Retry-After seconds.",
}


class _RawSchema(Schema):
    """A schema given as a ready JSON Schema dict (msgspec's), rendered as it is."""

    def __init__(self, raw: dict[str, Any]) -> None:
        super().__init__()
        self._raw = raw

    def to_schema(self) -> dict[str, Any]:
        return self._raw


def _inline_schema(body_type: type[Any]) -> dict[str, Any]:
    """Msgspec's JSON schema of the type with every reference replaced by its definition.

    Litestar regenerates the document's components, so references could not point there.
    """
    (schema,), components = msgspec.json.schema_components([body_type], ref_template="{name}")

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(components[node["$ref"]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def error_responses(*status_codes: int) -> dict[int, ResponseSpec]:
    """The OpenAPI responses of these error statuses, each with `ErrorResponse` as its body."""
    return {
        code: ResponseSpec(
            data_container=ErrorResponse, description=ERRORS[code], generate_examples=False
        )
        for code in status_codes
    }


def json_body_operation(
    body_type: type[Any], max_items: Mapping[str, int] | None = None
) -> type[Operation]:
    """An `Operation` class documenting a required JSON body of `body_type`.

    Args:
        body_type: The Struct the handler decodes the body into.
        max_items: Array properties of the body and their most items, where a setting (not
            the type) bounds them.
    """
    schema = _inline_schema(body_type)
    for name, limit in (max_items or {}).items():
        schema["properties"][name]["maxItems"] = limit
    request_body = RequestBody(
        required=True,
        content={"application/json": OpenAPIMediaType(schema=_RawSchema(schema))},
    )

    @dataclass
    class JSONBodyOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = request_body

    return JSONBodyOperation
