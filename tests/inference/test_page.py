"""The pricing page's files and vocabulary as the server answers them (browser: integration)."""

import re
from collections.abc import Callable
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from inference.page import CONTENT_SECURITY_POLICY, PAGE_FILES, closed_vocabularies
from shared_schema import FIELD_NAMES

from ..conftest import TEST_VOCABULARY
from .conftest import MakeClient

BRAND_MODELS = {"BMW": ["5ER"], "TOYOTA": ["CAMRY"], "MERCEDES": ["E_KLASSE"], "AUDI": ["A6"]}


@pytest.mark.parametrize(
    "path", ["/", *(f"/page/{name}" for name in PAGE_FILES if name != "index.html")]
)
def test_page_files_carry_the_strict_policy(
    make_client: MakeClient, model_bundle: Path, path: str
) -> None:
    """The page and each of its files is served with its media type and the strict CSP."""
    with make_client(model_bundle) as app:
        response = app.get(path)
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    name = path.rsplit("/", 1)[1] or "index.html"
    assert response.headers["content-type"].split(";")[0] == PAGE_FILES[name]


def test_page_loads_nothing_from_elsewhere(make_client: MakeClient, model_bundle: Path) -> None:
    """The HTML names no other origin and has no inline script or style to allow."""
    with make_client(model_bundle) as app:
        html = app.get("/").text
    assert "://" not in html
    assert re.search(r"<style|\sstyle=|\son[a-z]+=", html) is None
    assert re.findall(r"<script[^>]*>", html) == ['<script src="page/app.js" defer>']


def test_vocabulary_offers_the_schema_and_the_model(
    tmp_path: Path, bundle_writer: Callable[..., Path], make_client: MakeClient
) -> None:
    """Closed fields offer the schema's values, open ones the manifest's, with brand → models."""
    bundle = bundle_writer(tmp_path, brand_models=BRAND_MODELS)
    with make_client(bundle) as app:
        body: dict[str, Any] = app.get("/vocabulary").json()
    assert body["brand_models"] == BRAND_MODELS
    assert body["choices"]["brand"] == TEST_VOCABULARY["brand"]
    assert body["choices"]["color"] == TEST_VOCABULARY["color"]
    assert "лимузин" in body["choices"]["body_type"]  # the schema's, not the model's three
    assert body["closed"] == [
        "body_type",
        "drive_type",
        "fuel_type",
        "n_owners",
        "vehicle_transmission",
    ]


def test_vocabulary_of_an_older_bundle_has_no_brand_models(
    make_client: MakeClient, model_bundle: Path
) -> None:
    """A manifest written before brand_models answers null for it (the page offers all models)."""
    with make_client(model_bundle) as app:
        body = app.get("/vocabulary").json()
    assert body["brand_models"] is None
    assert body["choices"]["model_name"] == TEST_VOCABULARY["model_name"]


def test_vocabulary_before_a_model_is_a_503(make_client: MakeClient, tmp_path: Path) -> None:
    """No model loaded yet: /vocabulary is a 503 naming why, and the page itself still loads."""
    with make_client(tmp_path / "missing") as app:
        assert app.get("/vocabulary").status_code == 503
        assert app.get("/").status_code == 200


class FormFields(HTMLParser):
    """The names of a page's form fields, and which of them are a <select>."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.names: list[str] = []
        self.selects: set[str] = set()
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        name = dict(attrs).get("name")
        if tag in {"input", "select"} and name:
            self.names.append(name)
            if tag == "select":
                self.selects.add(name)


def form_problems(html: str) -> list[str]:
    """How the page's form differs from the schema: its field names and closed vocabularies."""
    form = FormFields(html)
    problems = []
    expected = sorted((*FIELD_NAMES, "asking_price_rub"))
    if sorted(form.names) != expected:
        problems.append(f"form fields {sorted(form.names)}, schema {expected}")
    problems += [
        f"{name} is not a <select>" for name in closed_vocabularies() if name not in form.selects
    ]
    return problems


def test_the_forms_fields_are_the_schemas() -> None:
    """index.html names every Car field once (and the asking price); closed ones are <select>s."""
    html = (resources.files("inference") / "page" / "index.html").read_text("utf-8")
    assert form_problems(html) == []
    # The check can fail: a renamed field, and a closed vocabulary typed into a text input.
    assert form_problems(html.replace('name="mileage"', 'name="mileage_km"')) != []
    broken = html.replace(
        '<select id="fuel_type" name="fuel_type"', '<input id="fuel_type" name="fuel_type"'
    )
    assert form_problems(broken) == ["fuel_type is not a <select>"]
