"""The pricing page in a real browser (Debian's chromium, driven by Playwright) on a real car-serve.

The browser, the servers and the recording of every page's requests: conftest.py.
"""

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from ...conftest import SAMPLE_CAR
from ...proxy_bound import HAPROXY_CFG
from ..conftest import free_port, haproxy
from .axe import axe_source
from .conftest import BRAND_MODELS, Pages, api_answer, digits, fill_car, proxy_responses

pytestmark = [pytest.mark.integration, pytest.mark.needs("car-serve", "haproxy", "chromium")]

pytestmark = [pytest.mark.integration, pytest.mark.needs("car-serve", "haproxy", "chromium")]


def test_a_request_to_another_origin_is_caught(servers: dict[str, str], pages: Pages) -> None:
    """The interception the other tests rely on sees a request that leaves the server."""
    outside = "http://203.0.113.7/logo.png"  # TEST-NET-3: never a real host
    page = pages.context(servers["direct"]).new_page()
    page.set_content(f'<img src="{outside}">')  # no CSP on a blank page: the image is asked for
    assert pages.elsewhere == [outside]
    pages.elsewhere.clear()


@pytest.mark.parametrize("via", ["direct", "proxy"])
def test_filling_the_form_prices_a_car_and_rates_it(
    servers: dict[str, str], pages: Pages, via: str
) -> None:
    """The form prices the car as the API does, draws the interval and rates the asking price."""
    metrics_url = servers["proxy_metrics"] if via == "proxy" else None
    page = price_a_car(pages, servers[via], metrics_url)
    answer = api_answer(servers["direct"], {**SAMPLE_CAR, "asking_price_rub": 5e6}).json()
    assert digits(page.get_by_test_id("price").inner_text()) == str(int(answer["price_rub"] + 0.5))
    assert answer["rating"] == "above_market"
    assert page.get_by_test_id("rating").inner_text().startswith("Выше рынка")
    assert page.locator("#bar-range").is_visible()
    assert page.locator("#bar-asking").is_visible()
    lower = f"{int(answer['price_lower_rub'] + 0.5):,}".replace(",", "\u00a0")
    assert lower in page.locator("#interval-text").inner_text()


def price_a_car(pages: Pages, url: str, metrics_url: str | None = None) -> Page:
    """Open the page at `url`, fill the test car with an asking price, price it.

    With `metrics_url` (HAProxy's exporter) the page's route through the proxy is checked on
    HAProxy's own counters, read around the page load and around the click: the page's files and
    vocabulary went to the `page` backend, its price to `granian` (the bound on predictions).
    """
    before_load = proxy_responses(metrics_url) if metrics_url else {}
    page = pages.open(url)
    page.wait_for_load_state("networkidle")
    loaded = len(pages.page_files())
    before_click = proxy_responses(metrics_url) if metrics_url else {}
    fill_car(page)
    page.get_by_label("Цена продавца, ₽").fill("5 000 000")
    page.get_by_role("button", name="Оценить").click()
    page.wait_for_selector("#result:not([hidden])")
    page.wait_for_load_state("networkidle")
    if metrics_url:
        after = proxy_responses(metrics_url)

        def added(since: dict[tuple[str, str], float], backend: str, code: str = "2xx") -> float:
            return after.get((backend, code), 0) - since.get((backend, code), 0)

        late = len(pages.page_files()) - loaded  # the icon, which chromium may ask once idle
        assert loaded >= 4  # /, script, style, vocabulary
        routes = {
            backend: (added(before_load, backend), added(before_click, backend))
            for backend in ("page", "granian")
        }
        assert routes == {"page": (loaded + late, late), "granian": (1, 1)}, "routes via proxy"
        assert added(before_load, "page", "5xx") == 0
    return page


def test_the_proxy_check_fails_when_the_price_takes_the_page_backend(
    servers: dict[str, str], pages: Pages, tmp_path: Path
) -> None:
    """The route check above fails on a config that sends /predict round the bound."""
    config = HAPROXY_CFG.read_text("utf-8")
    wrong = config.replace("acl page path / /vocabulary", "acl page path_beg /")
    assert wrong != config
    (tmp_path / "haproxy.cfg").write_text(wrong, "utf-8")
    metrics_port = free_port()
    log = tmp_path / "haproxy.log"
    with haproxy(
        servers["upstream"],
        log,
        max_in_flight=8,
        metrics_port=metrics_port,
        config=tmp_path / "haproxy.cfg",
    ) as proxy:
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics/proxy"
        with pytest.raises(AssertionError, match="routes via proxy"):
            price_a_car(pages, proxy, metrics_url)


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
    assert page.locator("#production_year-error").inner_text() == (
        "Значение должно быть не меньше 1900. " + server_message(url, production_year=1800)
    )
    assert page.evaluate("document.activeElement.id") == "production_year"
    assert page.locator("#result").is_hidden()
    # The server names one field at a time: once the year is right, the asking price is next.
    page.get_by_label("Год выпуска *", exact=True).fill("2012")
    page.get_by_role("button", name="Оценить").click()
    page.wait_for_selector("#asking_price_rub[aria-invalid=true]")
    assert page.locator("#asking_price_rub-error").inner_text() == (
        "Значение должно быть больше 0. " + server_message(url, asking_price_rub=0)
    )
    assert page.locator("#production_year-error").inner_text() == ""


def server_message(url: str, **change: object) -> str:
    """The API's 422 message for the test car changed so (one field named)."""
    answer = api_answer(url, {**SAMPLE_CAR, **change})
    assert answer.status_code == 422
    (location,) = answer.json()["extra"]
    return str(location["message"])


def test_the_page_reads_what_a_person_types(servers: dict[str, str], pages: Pages) -> None:
    """Lower-case brand and model are priced; 0x10 km is no number; an empty field is required."""
    url = servers["direct"]
    page = pages.open(url)
    brand = page.get_by_label("Марка *", exact=True)
    brand.fill("bmw")
    models = "Array.from(document.querySelectorAll('#model-list option'), o => o.value)"
    assert page.evaluate(models) == BRAND_MODELS["BMW"]
    fill_car(page, **{"Марка *": "bmw", "Модель *": "5er", "Пробег, км *": "0x10"})
    page.get_by_role("button", name="Оценить").click()
    page.wait_for_selector("#mileage[aria-invalid=true]")
    assert page.locator("#mileage-error").inner_text() == (
        "Нужно целое число. " + server_message(url, mileage="0x10")
    )
    page.get_by_label("Пробег, км *", exact=True).fill("120 000")
    page.get_by_role("button", name="Оценить").click()
    page.wait_for_selector("#result:not([hidden])")
    answer = api_answer(url, SAMPLE_CAR).json()
    assert digits(page.get_by_test_id("price").inner_text()) == str(int(answer["price_rub"] + 0.5))
    brand.fill("")
    page.get_by_role("button", name="Оценить").click()
    page.wait_for_selector("#brand[aria-invalid=true]")
    missing = dict(SAMPLE_CAR)
    del missing["brand"]
    assert page.locator("#brand-error").inner_text() == (
        "Обязательное поле: заполните его. "
        + str(api_answer(url, missing).json()["extra"][0]["message"])
    )


def test_an_interval_of_one_price_draws_a_bar(servers: dict[str, str], pages: Pages) -> None:
    """Lower bound equal to the upper one: the bar's marks are placed, not at NaN %."""
    page = pages.open(servers["direct"])
    one_price = "price_rub: 1e6, price_lower_rub: 1e6, price_upper_rub: 1e6"
    page.evaluate(f"showPrice({{{one_price}, model_version: '1'}})")
    left = page.evaluate("document.getElementById('bar-price').style.left")
    assert left.endswith("%")
    assert 0 < float(left.removesuffix("%")) < 100


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
    """<script> and onerror markup in fields stay text; the same probes fire on a bare page."""
    hostile = ["<script>window.pwned = 1</script>", '<img src="x" onerror="window.pwned = 2">']
    page = pages.open(servers["direct"])
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: errors.append(dialog.message))
    # The brand is echoed in the model hint, upper-cased: ONERROR="WINDOW.PWNED = 2" would throw.
    fill_car(page, **{"Марка *": hostile[1], "Цвет *": hostile[0], "Модель *": hostile[0]})
    page.get_by_role("button", name="Оценить").click()
    page.wait_for_selector("#brand[aria-invalid=true]")
    echoed = hostile[1].upper()
    assert echoed in page.locator("#model-hint").inner_text()
    assert page.evaluate("window.pwned") is None
    assert page.locator("img, main script").count() == 0
    assert errors == []
    # Trusted Types: the page cannot turn a string into HTML at all.
    with pytest.raises(Exception, match="TrustedHTML"):
        page.evaluate("document.getElementById('model-hint').innerHTML = '<b>x</b>'")
    # The probes can fail: the same markup written as HTML into a page without the CSP runs.
    bare = browser.new_page()
    bare_errors: list[str] = []
    bare.on("pageerror", lambda error: bare_errors.append(str(error)))
    bare.set_content("<p id=x></p><p id=y></p>")
    bare.evaluate(f"document.getElementById('x').innerHTML = {hostile[1]!r}")
    bare.wait_for_function("window.pwned === 2")
    bare.evaluate(f"document.getElementById('y').innerHTML = {echoed!r}")
    bare.wait_for_function("document.querySelectorAll('img').length === 2")
    bare.wait_for_timeout(200)  # the image's error event
    assert any("WINDOW" in error for error in bare_errors), bare_errors
    bare.close()


def test_the_page_passes_axe(servers: dict[str, str], pages: Pages) -> None:
    """axe-core (pinned, from the npm registry) finds no violation, filled and with an error."""
    source = axe_source()
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
