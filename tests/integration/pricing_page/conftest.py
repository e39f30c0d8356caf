"""The pricing page's browser tests: Debian's chromium, a real car-serve and HAProxy before it.

One browser for the module, one car-serve (Granian) on the test bundle with an interval and
brand → model lists, and HAProxy with the repository's config in front of it. Every page gets
a fresh context whose requests are all recorded: a request to any other origin fails the test,
and so does a page file or vocabulary answered other than 200.
"""

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route, sync_playwright

from ...programs import program
from ..conftest import free_port, haproxy, serve

BRAND_MODELS = {"BMW": ["5ER"], "TOYOTA": ["CAMRY"], "MERCEDES": ["E_KLASSE"], "AUDI": ["A6"]}

#: The form's fields by their visible labels (what a screen reader announces), and a car.
TEXT_FIELDS = {
    "Марка *": "BMW",
    "Модель *": "5ER",
    "Цвет *": "чёрный",
    "Год начала выпуска модели *": "2010",
    "Год выпуска *": "2012",
    "Дверей *": "4",
    "Пробег, км *": "120 000",
    "Мощность, л. с. *": "245",
    "Объём двигателя, л": "3,0",
}
SELECTS = {
    "Кузов *": "седан",
    "Топливо *": "бензин",
    "Коробка передач *": "автомат",
    "Привод *": "задний",
    "Владельцев по ПТС *": "2",
}


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver, once for the module."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's chromium, headless, once for the module (its own download is never used)."""
    chromium = playwright.chromium.launch(
        executable_path=program("chromium"), args=["--no-sandbox"]
    )
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, bundle_writer: Callable[..., Path]
) -> Iterator[dict[str, str]]:
    """A real car-serve and HAProxy in front of it: the URLs "direct", "proxy", "proxy_metrics"."""
    folder = tmp_path_factory.mktemp("page")
    bundle = bundle_writer(folder / "bundle", interval=True, brand_models=BRAND_MODELS)
    metrics_port = free_port()
    with serve(bundle, folder / "server.log") as server:
        upstream = server.url.removeprefix("http://")
        log = folder / "haproxy.log"
        with haproxy(upstream, log, max_in_flight=8, metrics_port=metrics_port) as proxy:
            yield {
                "direct": server.url,
                "upstream": upstream,
                "proxy": proxy,
                "proxy_metrics": f"http://127.0.0.1:{metrics_port}/metrics/proxy",
            }


class Pages:
    """Pages opened in fresh browser contexts whose requests to other origins are caught.

    Every request is routed through a handler that lets the server's own origin through and
    aborts the rest, recording it in `elsewhere`; every response a page gets is recorded in
    `responses` as (path, status).
    """

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[BrowserContext] = []
        self.elsewhere: list[str] = []
        self.responses: list[tuple[str, int]] = []

    def context(self, url: str) -> BrowserContext:
        """A fresh context that lets only `url`'s origin through."""
        context = self.browser.new_context(locale="ru-RU")
        self.contexts.append(context)

        def route(request_route: Route) -> None:
            if request_route.request.url.startswith(url + "/"):
                request_route.continue_()
            else:
                self.elsewhere.append(request_route.request.url)
                request_route.abort()

        context.route("**/*", route)
        context.on(
            "response",
            lambda response: self.responses.append(
                (response.url.removeprefix(url), response.status)
            ),
        )
        return context

    def open(self, url: str) -> Page:
        """The pricing page at `url`, its form ready (vocabulary filled)."""
        page = self.context(url).new_page()
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready=true]")
        return page

    def page_files(self) -> list[tuple[str, int]]:
        """The responses other than predictions: the page's files and its vocabulary."""
        return [(path, status) for path, status in self.responses if path != "/predict"]


@pytest.fixture
def pages(browser: Browser) -> Iterator[Pages]:
    """Open pricing pages; afterwards, fail if one asked elsewhere or got a page file not 200."""
    opened = Pages(browser)
    yield opened
    for context in opened.contexts:
        context.close()
    assert opened.elsewhere == [], f"the page asked other origins: {opened.elsewhere}"
    failed = [(path, status) for path, status in opened.page_files() if status != 200]
    assert failed == [], f"page files not answered 200: {failed}"


def fill_car(page: Page, **changes: str) -> None:
    """Fill the form by its labels with the test car, changed where asked."""
    for label, value in TEXT_FIELDS.items():
        page.get_by_label(label, exact=True).fill(changes.get(label, value))
    for label, value in SELECTS.items():
        page.get_by_label(label, exact=True).select_option(changes.get(label, value))


def api_answer(url: str, car: dict[str, Any]) -> httpx.Response:
    """The API's own answer for a car, for the page to be compared with."""
    return httpx.post(f"{url}/predict", json=car, timeout=10)


def digits(text: str) -> str:
    """The digits of a text (a price as the page formats it)."""
    return re.sub(r"\D", "", text)


def proxy_responses(metrics_url: str) -> dict[tuple[str, str], float]:
    """Responses per (HAProxy backend, status class), from its own Prometheus exporter."""
    text = httpx.get(metrics_url, timeout=5).text
    found = re.findall(
        r'^haproxy_backend_http_responses_total\{proxy="(\w+)",code="(\w+)"\} (\S+)$', text, re.M
    )
    return {(backend, code): float(value) for backend, code, value in found}
