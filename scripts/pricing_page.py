"""The pricing page's screenshots and figures, from a running car-serve, in Debian's chromium.

Writes `docs/pricing-page-{empty,priced,error}.png` and prints, over `--runs` fresh browser
contexts (medians): the page's weight (bytes of every response the page load fetched, the
vocabulary included), and from the page's own User Timing marks (app.js) the time from
navigation start to the form being ready (vocabulary filled) and from the click on «Оценить»
to the price shown; their sum is the time from page load to the first price, a person's typing
left out. Beside it, in the same run, the bare API round trip of the same car (`POST /predict`
from Python), the simplest outside way to get the price.

Run: `make serve` in one shell, then
`uv run --frozen python -m scripts.pricing_page --url http://127.0.0.1:8000`.
"""

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: The figures' car: the tests' sample car (its one home), a year younger, with an asking price.
API_CAR: dict[str, Any] = {
    **json.loads((ROOT / "tests" / "data" / "car.json").read_text("utf-8")),
    "production_year": 2013,
    "asking_price_rub": 1_450_000.0,
}


def typed(value: object) -> str:
    """A value as a person types it into the form: 3,0 (litres), 245, 2010, 120 000."""
    if isinstance(value, str):
        return value
    assert isinstance(value, int | float)
    if isinstance(value, float) and value < 100:
        return f"{value:.1f}".replace(".", ",")
    whole = int(value)
    return f"{whole:,}".replace(",", " ") if whole >= 10_000 else str(whole)


def fill(page: Page, **changes: object) -> None:
    """Fill the form field by field with the figures' car, changed where asked (by field name)."""
    for name, value in {**API_CAR, **changes}.items():
        field = page.locator(f"#{name}")
        if field.evaluate("element => element.tagName") == "SELECT":
            field.select_option(str(value))
        else:
            field.fill(typed(value))


#: The page's own User Timing marks (app.js), in ms since navigation start.
_MARKS = "Object.fromEntries(performance.getEntriesByType('mark').map(m => [m.name, m.startTime]))"


def one_run(page: Page, url: str) -> dict[str, float]:
    """Load the page, price the car; the weight and the times of this load, from the page."""
    sizes: list[int] = []
    page.on("response", lambda response: sizes.append(len(response.body())))
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready=true]")
    fill(page)
    page.get_by_role("button", name="Оценить").click()
    page.wait_for_selector("#result:not([hidden])")
    marks = page.evaluate(_MARKS)
    ready, price = marks["form-ready"], marks["price-shown"] - marks["price-requested"]
    return {
        "weight_kb": sum(sizes) / 1e3,
        "load_to_form_ready_ms": ready,
        "click_to_price_ms": price,
        "load_to_first_price_ms_without_typing": ready + price,
    }


def main(argv: list[str] | None = None) -> int:
    """Take the screenshots, then measure `--runs` page loads and API calls; print medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    url = args.url.rstrip("/")
    runs: list[dict[str, float]] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        shot: dict[str, Any] = {"full_page": True}
        context = browser.new_context(locale="ru-RU", viewport={"width": 1000, "height": 900})
        page = context.new_page()
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready=true]")
        page.screenshot(path=DOCS / "pricing-page-empty.png", **shot)
        fill(page, production_year=1800)
        page.get_by_role("button", name="Оценить").click()
        page.wait_for_selector("#production_year[aria-invalid=true]")
        page.screenshot(path=DOCS / "pricing-page-error.png", **shot)
        page.get_by_label("Год выпуска *", exact=True).fill("2013")
        page.get_by_role("button", name="Оценить").click()
        page.wait_for_selector("#result:not([hidden])")
        page.screenshot(path=DOCS / "pricing-page-priced.png", **shot)
        context.close()
        for _ in range(args.runs):
            context = browser.new_context(locale="ru-RU")
            runs.append(one_run(context.new_page(), url))
            context.close()
        browser.close()
    api_ms = []
    with httpx.Client() as client:
        for _ in range(args.runs):
            start = time.perf_counter()
            client.post(f"{url}/predict", json=API_CAR).raise_for_status()
            api_ms.append((time.perf_counter() - start) * 1e3)
    for key in runs[0]:
        values = [run[key] for run in runs]
        low, high, middle = min(values), max(values), statistics.median(values)
        print(f"{key}: median {middle:.1f} (min {low:.1f}, max {high:.1f})")
    print(f"api_round_trip_ms: median {statistics.median(api_ms):.1f} (min {min(api_ms):.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
