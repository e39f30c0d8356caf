"""The `needs` marker: a missing, undeclared or unknown program fails the test, naming it."""

import sys
from types import SimpleNamespace
from typing import Any

import pytest

from . import programs

Failed: Any = pytest.fail.Exception


def _item(*names: str) -> Any:
    """A stand-in for a test item whose one `needs` marker names `names`."""
    marks = [pytest.mark.needs(*names).mark] if names else []
    return SimpleNamespace(iter_markers=lambda name: [m for m in marks if m.name == name])


@pytest.fixture
def known(monkeypatch: pytest.MonkeyPatch) -> None:
    """SOURCES with this Python (found) and a program no machine has (missing)."""
    sources = programs.SOURCES | {
        "python3": "the test's own interpreter",
        "car-price-absent-program": "nowhere (a test's name)",
    }
    monkeypatch.setattr(programs, "SOURCES", sources)


def test_a_declared_program_that_is_there_resolves_to_its_path(known: None) -> None:
    """needs("python3"): the check passes and program() answers the virtualenv's python3."""
    programs.declare(_item("python3"))
    assert programs.program("python3").startswith(str(sys.prefix))


def test_a_missing_program_fails_naming_it_and_where_it_comes_from(known: None) -> None:
    """A program on neither PATH nor the virtualenv fails the test, naming where it comes from.

    A failure, not a skip: CI must not pass without the program.
    """
    with pytest.raises(BaseException) as raised:  # noqa: PT011 - a skip must fail this test too
        programs.declare(_item("car-price-absent-program"))
    assert raised.type is Failed
    assert "car-price-absent-program not found: it comes from nowhere" in str(raised.value)


def test_a_program_run_without_its_marker_fails(known: None) -> None:
    """program() in a test that does not declare the program names the missing marker."""
    programs.declare(_item())
    with pytest.raises(Failed, match=r"runs python3 without @pytest.mark.needs\('python3'\)"):
        programs.program("python3")


def test_an_unknown_program_name_fails() -> None:
    """A `needs` naming a program SOURCES does not list (a typo) is an error, not a no-op."""
    with pytest.raises(Failed, match=r"needs\('promtol'\): not in tests/programs.py SOURCES"):
        programs.declare(_item("promtol"))
