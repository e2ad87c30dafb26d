"""asyncio helpers the layers share (stdlib only)."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Future[Any]) -> None:
    """Cancel `tasks` and wait until each has finished; their outcomes are dropped.

    The caller's own cancellation is not: it propagates. (`with suppress(CancelledError):
    await task` would swallow a cancellation of the caller that lands while it waits, and the
    caller would carry on as if it had never been asked to stop: a stream that never ends.)"""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: an error on the way out is not worth a warning
