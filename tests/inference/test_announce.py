"""The pricing page's address: how it is written, and that the set of workers says it once."""

from pathlib import Path

import pytest

from inference.announce import ANNOUNCED, STARTED_SUFFIX, mark_started, page_url
from inference.settings import Settings

LINE = "car-serve: the pricing page is at http://127.0.0.1:9100/\n"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:9100/"),
        ("0.0.0.0", "http://localhost:9100/"),
        ("::1", "http://[::1]:9100/"),
    ],
)
def test_the_address_is_the_one_a_browser_on_this_machine_opens(host: str, url: str) -> None:
    """A wildcard bind is named localhost; an IPv6 address gets its brackets."""
    assert page_url(Settings.from_env(host=host, port="9100")) == url


def test_the_worker_completing_the_set_says_it_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two workers: one mark says nothing, the second says the address, a respawn's not again."""
    settings = Settings.from_env(host="127.0.0.1", port="9100", workers="2")
    mark_started(settings, tmp_path)
    assert capsys.readouterr().err == ""
    (tmp_path / f"1{STARTED_SUFFIX}").touch()  # the other worker, serving now
    mark_started(settings, tmp_path)
    assert capsys.readouterr().err == LINE
    assert (tmp_path / ANNOUNCED).exists()
    (tmp_path / f"2{STARTED_SUFFIX}").touch()  # a respawned worker
    mark_started(settings, tmp_path)
    assert capsys.readouterr().err == ""
