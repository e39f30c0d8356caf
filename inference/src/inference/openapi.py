"""OpenAPI request bodies for handlers that decode their own bodies with msgspec.

The prediction handlers read the raw body and decode it with a prebuilt, strict msgspec
decoder (one pass, exact error paths, no string-to-number coercion), so Litestar does not see
a `data` parameter to document. These operation classes put the msgspec JSON schema of the
body type back into the OpenAPI document.
"""

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema


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


def json_body_operation(body_type: type[Any]) -> type[Operation]:
    """An `Operation` class documenting a required JSON body of `body_type`."""
    request_body = RequestBody(
        required=True,
        content={
            "application/json": OpenAPIMediaType(schema=_RawSchema(_inline_schema(body_type)))
        },
    )

    @dataclass
    class JSONBodyOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = request_body

    return JSONBodyOperation
