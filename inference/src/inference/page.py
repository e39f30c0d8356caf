"""The pricing page for people: `/`, its static files, and the vocabularies its form offers.

The page is three static files in `inference/page/` (HTML, one script, one style sheet), read
once when the app is built and served from memory: no build step, no CDN, nothing fetched from
anywhere but this server. Every page response carries a strict Content-Security-Policy (no
inline script or style, connections to this origin only), so text a field echoes can never run.

`GET /vocabulary` is what the form offers: the closed fields' values as the schema accepts
them, and the open ones (brand, model, colour) as the served model knows them, with each
brand's model names (`Manifest.brand_models`, written by the exporter) for the dependent list.
"""

import typing
from importlib import resources
from typing import Final, Literal, get_args, get_origin

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE

from inference.openapi import error_responses
from inference.reload import ModelHolder
from shared_schema import CATEGORICAL_FIELDS, Car

#: Where the page may load from and talk to: this origin only, no inline code or style.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'; "
    # No HTML from strings at all (innerHTML and the like throw): the script writes text only.
    "require-trusted-types-for 'script'; trusted-types 'none'"
)
PAGE_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate on every load: a new server version's page is never mixed with an old script.
    "Cache-Control": "no-cache",
}
#: The page's files (in the `inference.page` folder) and their media types (Litestar adds
#: `charset=utf-8` to the text ones).
PAGE_FILES: Final = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "app.css": "text/css",
    "icon.svg": "image/svg+xml",
}


class VocabularyResponse(msgspec.Struct, frozen=True):
    """The values the pricing form offers.

    Attributes:
        model_version: The served model's version.
        choices: Per categorical field, the values to offer: the schema's own for a closed
            field, the model's known categories (most frequent first) for an open one.
        closed: The fields whose values the schema fixes (any other value is a 422).
        brand_models: Per known brand, its known model names; None when the bundle does not
            record them (then every known model name is offered).
    """

    model_version: str
    choices: dict[str, list[str]]
    closed: list[str]
    brand_models: dict[str, list[str]] | None


def closed_vocabularies() -> dict[str, list[str]]:
    """The categorical `Car` fields the schema closes with a `Literal`, and their values."""
    hints = typing.get_type_hints(Car, include_extras=True)
    return {
        name: [str(value) for value in get_args(hints[name])]
        for name in CATEGORICAL_FIELDS
        if get_origin(hints[name]) is Literal
    }


def page_routes(holder: ModelHolder) -> list[HTTPRouteHandler]:
    """`GET /` (the page), `GET /page/<file>` (its script, style, icon) and `GET /vocabulary`."""
    folder = resources.files("inference") / "page"
    contents = {name: (folder / name).read_bytes() for name in PAGE_FILES}
    closed = closed_vocabularies()

    def page_file(name: str) -> Response[bytes]:
        return Response(contents[name], media_type=PAGE_FILES[name], headers=PAGE_HEADERS)

    @get("/", tags=["page"], include_in_schema=False)
    async def index() -> Response[bytes]:
        """The pricing page."""
        return page_file("index.html")

    @get("/page/app.js", tags=["page"], include_in_schema=False)
    async def script() -> Response[bytes]:
        """The page's script."""
        return page_file("app.js")

    @get("/page/app.css", tags=["page"], include_in_schema=False)
    async def style() -> Response[bytes]:
        """The page's style sheet."""
        return page_file("app.css")

    @get("/page/icon.svg", tags=["page"], include_in_schema=False)
    async def icon() -> Response[bytes]:
        """The page's icon (so the browser asks this server, not a default favicon path)."""
        return page_file("icon.svg")

    @get(
        "/vocabulary",
        responses=error_responses(HTTP_503_SERVICE_UNAVAILABLE),
        tags=["page"],
    )
    async def vocabulary() -> VocabularyResponse:
        """The values the pricing form offers, from the schema and the served model."""
        model = holder.model()
        known = model.manifest.categories or {}
        choices = {name: closed.get(name, known.get(name, [])) for name in CATEGORICAL_FIELDS}
        return VocabularyResponse(
            model.version, choices, sorted(closed), model.manifest.brand_models
        )

    return [index, script, style, icon, vocabulary]
