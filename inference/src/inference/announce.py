"""`car-serve` ends its start-up output with the pricing page's address, once all workers serve.

Granian logs each worker's "Started worker-N" only after the worker's lifespan start-up, so
car-serve cannot say the address before Granian starts (Granian's own lines would follow it).
Instead each worker, once serving, leaves a mark in the run's shared multiprocess directory
(`inference.multiprocess`, emptied at start); the worker whose mark completes the set says the
address, and only once per run (a respawned worker adds a mark but the set was complete).
"""

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Final

from inference.settings import Settings

logger = logging.getLogger(__name__)

#: A worker's mark, `<pid>.started`, and the one file whose creation says the address once.
STARTED_SUFFIX: Final = ".started"
ANNOUNCED: Final = "page-announced"
#: The lifespan runs before Granian's worker serves and logs "Started worker-N"; the event loop
#: runs again only once it does, so a callback this long after the start-up runs after it.
AFTER_STARTUP_S: Final = 0.05


def page_url(settings: Settings) -> str:
    """The pricing page's address as a person on this machine opens it."""
    host = settings.host
    if host in {"0.0.0.0", "::", ""}:  # noqa: S104 - naming the wildcard, not binding to it
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/"


def mark_started(settings: Settings, folder: Path) -> None:
    """Mark this worker as serving; say the page's address if it completes the set of workers."""
    (folder / f"{os.getpid()}{STARTED_SUFFIX}").touch()
    if len(list(folder.glob(f"*{STARTED_SUFFIX}"))) < settings.workers:
        return
    try:
        (folder / ANNOUNCED).touch(exist_ok=False)
    except FileExistsError:  # another worker completed the set at the same time, or a respawn
        return
    print(f"car-serve: the pricing page is at {page_url(settings)}", file=sys.stderr, flush=True)


def announce_once_serving(settings: Settings, folder: Path | None) -> None:
    """From a worker's lifespan start-up: mark it started once it serves (`folder`: None, off)."""
    if folder is None:  # not under car-serve (an app built by a test): nobody to tell
        return
    asyncio.get_running_loop().call_later(AFTER_STARTUP_S, mark_started, settings, folder)
