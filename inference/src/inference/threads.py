"""The worker's helper threads' one setting: the lowest CPU priority."""

import contextlib
import os
import threading


def lowest_cpu_priority() -> None:
    """Give the calling thread (Linux: a task of its own) the lowest CPU priority, nice 19.

    A thread started with it gets the core only when the event loop's thread does not want it:
    a single car arriving during a batch (or a shadow run) runs almost at once, not after the
    scheduler's turn.
    """
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or not allowed: no-op
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
