"""The pricing page in a real browser (Debian's chromium, driven by Playwright) on a real car-serve.

One browser for the module, one car-serve (Granian) on the test bundle with an interval and
brand → model lists, and HAProxy with the repository's config in front of it. Every page gets
a fresh context whose requests are all recorded: a request to any other origin fails the test.
"""

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route, sync_playwright

from ..conftest import SAMPLE_CAR
from ..programs import program
from .axe import axe_source
from .conftest import free_port, haproxy, serve

pytestmark = [pytest.mark.integration, pytest.mark.needs("car-serve", "haproxy", "chromium")]

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
                "proxy": proxy,
                "proxy_metrics": f"http://127.0.0.1:{metrics_port}/metrics/proxy",
            }


class Pages:
    """Pages opened in fresh browser contexts whose requests to other origins are caught.

    Every request is routed through a handler that lets the server's own origin through and
    aborts the rest, recording it in `elsewhere`.
    """

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[BrowserContext] = []
        self.elsewhere: list[str] = []

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
        return context

    def open(self, url: str) -> Page:
        """The pricing page at `url`, its form ready (vocabulary filled)."""
        page = self.context(url).new_page()
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready=true]")
        return page


@pytest.fixture
def pages(browser: Browser) -> Iterator[Pages]:
    """Open pricing pages; afterwards, the test fails if any of them asked another origin."""
    opened = Pages(browser)
    yield opened
    for context in opened.contexts:
        context.close()
    assert opened.elsewhere == [], f"the page asked other origins: {opened.elsewhere}"


def test_a_request_to_another_origin_is_caught(servers: dict[str, str], pages: Pages) -> None:
    """The interception the other tests rely on sees a request that leaves the server."""
    outside = "http://203.0.113.7/logo.png"  # TEST-NET-3: never a real host
    page = pages.context(servers["direct"]).new_page()
    page.set_content(f'<img src="{outside}">')  # no CSP on a blank page: the image is asked for
    assert pages.elsewhere == [outside]
    pages.elsewhere.clear()


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
    return re.sub(r"\D", "", text)


@pytest.mark.parametrize("via", ["direct", "proxy"])
def test_filling_the_form_prices_a_car_and_rates_it(
    servers: dict[str, str], pages: Pages, via: str
) -> None:
    """The form prices the car as the API does, draws the interval and rates the asking price."""
    url = servers[via]
    page = pages.open(url)
    fill_car(page)
    page.get_by_label("Цена продавца, ₽").fill("5 000 000")
    page.get_by_role("button", name="Оценить").click()
    page.wait_for_selector("#result:not([hidden])")
    answer = api_answer(url, {**SAMPLE_CAR, "asking_price_rub": 5e6}).json()
    assert digits(page.get_by_test_id("price").inner_text()) == str(int(answer["price_rub"] + 0.5))
    assert answer["rating"] == "above_market"
    assert page.get_by_test_id("rating").inner_text().startswith("Выше рынка")
    assert page.locator("#bar-range").is_visible()
    assert page.locator("#bar-asking").is_visible()
    lower = f"{int(answer['price_lower_rub'] + 0.5):,}".replace(",", "\u00a0")
    assert lower in page.locator("#interval-text").inner_text()
    if via == "proxy":  # the page's files went round the bound on predictions, its price not
        answered = proxy_responses(servers["proxy_metrics"])
        assert answered.get("page", 0) >= 4  # /, script, style, vocabulary (the icon: when idle)
        assert answered.get("granian", 0) >= 1


def proxy_responses(metrics_url: str) -> dict[str, float]:
    """2xx responses per HAProxy backend, from its own Prometheus exporter."""
    text = httpx.get(metrics_url, timeout=5).text
    found = re.findall(
        r'^haproxy_backend_http_responses_total\{proxy="(\w+)",code="2xx"\} (\S+)$', text, re.M
    )
    return {backend: float(value) for backend, value in found}


def test_a_wrong_field_shows_the_servers_message_beside_it(
    servers: dict[str, str], pages: Pages
) -> None:
    """Year 1800 and a zero asking price: the API's own 422 messages, each beside its field."""
    url = servers["direct"]
    page = pages.open(url)
    fill_car(page, **{"Год выпуска *": "1800"})
    page.get_by_label("Цена продавца, ₽").fill("0")
    page.get_by_role("button", name="Оценить").click()
    page.wait_for_selector("#production_year[aria-invalid=true]")
    api = api_answer(url, {**SAMPLE_CAR, "production_year": 1800}).json()
    (location,) = api["extra"]
    assert page.locator("#production_year-error").inner_text() == location["message"]
    assert page.evaluate("document.activeElement.id") == "production_year"
    assert page.locator("#result").is_hidden()
    # The server names one field at a time: once the year is right, the asking price is next.
    page.get_by_label("Год выпуска *", exact=True).fill("2012")
    page.get_by_role("button", name="Оценить").click()
    page.wait_for_selector("#asking_price_rub[aria-invalid=true]")
    assert page.locator("#asking_price_rub-error").inner_text() == "Expected `float` > 0.0"
    assert page.locator("#production_year-error").inner_text() == ""


def test_the_model_list_follows_the_brand_and_names_an_unknown_one(
    servers: dict[str, str], pages: Pages
) -> None:
    """Each brand offers its own models; a brand the model does not know is said, and priced."""
    page = pages.open(servers["direct"])
    brand = page.get_by_label("Марка *", exact=True)
    models = "Array.from(document.querySelectorAll('#model-list option'), o => o.value)"
    for name, expected in BRAND_MODELS.items():
        brand.fill(name)
        assert page.evaluate(models) == expected
    brand.fill("ZAZ")
    assert page.evaluate(models) == []
    assert "Марка «ZAZ» модели неизвестна" in page.locator("#model-hint").inner_text()
    fill_car(page, **{"Марка *": "ZAZ", "Модель *": "ZAPOROZHETS"})
    page.get_by_role("button", name="Оценить").click()
    page.wait_for_selector("#result:not([hidden])")
    assert digits(page.get_by_test_id("price").inner_text())


def test_keyboard_alone_prices_a_car(servers: dict[str, str], pages: Pages) -> None:
    """Tab through the labelled fields, type, pick with arrows, Enter: a price, focus on it."""
    page = pages.open(servers["direct"])
    keys = page.keyboard
    typed = {
        "brand": "BMW",
        "model_name": "5ER",
        "body_type": "ArrowDown",  # внедорожник → седан
        "color": "чёрный",
        "model_year": "2010",
        "production_year": "2012",
        "n_doors": "4",
        "mileage": "120000",
    }
    for field, entry in typed.items():
        keys.press("Tab")
        assert page.evaluate("document.activeElement.id") == field
        if entry == "ArrowDown":
            keys.press(entry)
        else:
            keys.type(entry)
    for field in ("fuel_type", "engine_power"):
        keys.press("Tab")
        assert page.evaluate("document.activeElement.id") == field
    keys.type("245")
    for _ in range(7):  # displacement (optional), gearbox … wheel keep their defaults
        keys.press("Tab")
    assert page.evaluate("document.activeElement.id") == "asking_price_rub"
    keys.type("1500000")
    keys.press("Enter")
    page.wait_for_selector("#result:not([hidden])")
    assert page.evaluate("document.activeElement.id") == "result-title"
    assert page.locator("#body_type").input_value() == "седан"
    assert page.get_by_test_id("rating").inner_text()


def test_markup_typed_into_a_field_never_runs(
    servers: dict[str, str], pages: Pages, browser: Browser
) -> None:
    """<script> and an onerror handler in fields stay text; the same probe fires on a bare page."""
    hostile = ["<script>window.pwned = 1</script>", '<img src="x" onerror="window.pwned = 2">']
    page = pages.open(servers["direct"])
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    fill_car(page, **{"Марка *": hostile[0], "Цвет *": hostile[1], "Модель *": hostile[1]})
    page.get_by_role("button", name="Оценить").click()
    page.wait_for_selector("#brand[aria-invalid=true]")
    assert hostile[0] in page.locator("#model-hint").inner_text()
    assert page.evaluate("window.pwned") is None
    assert page.locator("img, main script").count() == 0
    assert dialogs == []
    # The probe can fail: the same markup written as HTML into a page without the CSP runs.
    bare = browser.new_page()
    bare.set_content("<p id=x></p>")
    bare.evaluate(f"document.getElementById('x').innerHTML = {hostile[1]!r}")
    bare.wait_for_function("window.pwned === 2")
    bare.close()


def test_the_page_passes_axe(
    servers: dict[str, str],
    pages: Pages,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """axe-core (pinned, from the npm registry) finds no violation, empty and with an error."""
    source = axe_source(tmp_path_factory)
    page = pages.open(servers["direct"])
    fill_car(page, **{"Год выпуска *": "1800"})
    for state in ("filled", "error"):
        if state == "error":
            page.get_by_role("button", name="Оценить").click()
            page.wait_for_selector("#production_year[aria-invalid=true]")
        # Evaluated over the DevTools protocol, which the page's CSP does not govern.
        page.evaluate(source)
        violations = page.evaluate(
            "axe.run(document).then(r => r.violations.map(v => v.id + ': ' + v.help))"
        )
        assert violations == [], state
    # The check can fail: a field without its label is a violation.
    page.evaluate("document.querySelector('label[for=brand]').remove()")
    violations = page.evaluate("axe.run(document).then(r => r.violations.map(v => v.id))")
    assert "label" in violations
