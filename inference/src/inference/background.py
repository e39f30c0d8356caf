"""Background tasks of a worker (batcher, lag monitor, bundle poller): stopped one way."""

import asyncio
import contextlib
from typing import Any


async def cancel(task: "asyncio.Task[Any] | None") -> None:
    """Cancel `task` (if any) and wait until it has finished."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
