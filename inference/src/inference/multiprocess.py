"""Prometheus multiprocess mode for Granian's workers, set up once by `car-serve` at start.

prometheus_client picks where a process keeps its samples when it is first imported: in memory,
or, with `PROMETHEUS_MULTIPROC_DIR` set, in memory-mapped files in that directory that any
worker's `/metrics` merges. So `car-serve` names the directory before anything imports
prometheus_client, and its workers (forked from it) import it afterwards. This module must not
import prometheus_client itself: `car-serve` imports it first.
"""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from inference.announce import ANNOUNCED, STARTED_SUFFIX

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    """The shared metrics directory when multiprocess mode is on."""
    path = os.environ.get(MULTIPROC_ENV)
    return Path(path) if path else None


@contextmanager
def multiprocess_environment() -> Iterator[Path]:
    """Make sure `PROMETHEUS_MULTIPROC_DIR` names an empty-at-start directory for the workers.

    An existing setting is kept: its directory is created if needed and emptied of the
    previous run's `*.db` files (prometheus_client's rule: wipe it between runs, or live gauges
    of dead workers and old counters carry over). Otherwise a temporary directory is created and
    removed on exit. Enter this before the workers start, so they inherit the variable.
    """
    existing = multiprocess_dir()
    if existing is not None:
        existing.mkdir(parents=True, exist_ok=True)
        # And of the previous run's start-up marks, or its page address would never be said.
        marks = [*existing.glob(f"*{STARTED_SUFFIX}"), existing / ANNOUNCED]
        for stale in [*existing.glob("*.db"), *marks]:
            stale.unlink(missing_ok=True)
        yield existing
        return
    with tempfile.TemporaryDirectory(prefix="carprice-metrics-") as path:
        os.environ[MULTIPROC_ENV] = path
        try:
            yield Path(path)
        finally:
            del os.environ[MULTIPROC_ENV]
