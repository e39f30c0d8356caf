"""`make run` ends with the pricing page's address: a real car-serve's start-up output."""

from pathlib import Path

import httpx
import pytest

from ...conftest import wait_for, write_bundle
from ..conftest import serve

pytestmark = [pytest.mark.integration, pytest.mark.needs("car-serve")]


def test_the_last_startup_line_is_the_pages_address(tmp_path: Path) -> None:
    """Two Granian workers at log level info: after all of Granian's lines, the page's URL."""
    bundle = write_bundle(tmp_path / "bundle")
    log = tmp_path / "server.log"
    # Granian logs to stdout, car-serve to stderr: both into the log, in order, as a terminal.
    both = ("sh", "-c", 'exec "$0" 1>&2')
    with serve(bundle, log, workers=2, launcher=both, LOG_LEVEL="info") as server:
        line = f"car-serve: the pricing page is at {server.url}/"
        wait_for(lambda: line in log.read_text("utf-8"), "the page's address")
        lines = log.read_text("utf-8").strip().splitlines()
        assert sum("Started worker-" in entry for entry in lines) == 2
        assert lines[-1] == line
        assert lines.count(line) == 1
        assert httpx.get(server.url + "/", timeout=5).status_code == 200
