"""Python step callables the Ray tests run on Ray workers (importable there as
tests.runtime.ray_callables: the tests put the repository on the workers' PYTHONPATH)."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Any


def where(value: Any = None) -> dict[str, Any]:
    """The value back, and which process ran it."""
    return {"value": value, "pid": os.getpid()}


def pid_then_sleep(path: str, seconds: float, idempotency_key: str) -> str:
    """Writes its process id and idempotency key to `path` (one line per attempt); the first
    attempt then sleeps (the test kills its process meanwhile), a later one returns its key."""
    first = not Path(path).exists()
    with Path(path).open("a") as out:
        out.write(f"{os.getpid()} {idempotency_key}\n")
    if first:
        time.sleep(seconds)
    return idempotency_key


async def checkpointed(podium_context: Any) -> str:
    """A checkpoint (it returns once the run committed it), a report and live text."""
    podium_context.delta("half way ")
    await podium_context.checkpoint("step.progress", {"message": "committed first"})
    podium_context.report("step.progress", {"message": "then reported", "fraction": 0.9})
    return "checkpointed"


async def sleeper(seconds: float, marker: str) -> str:
    """Writes `started` to `marker`, sleeps, and writes `cancelled` there if it is cancelled."""
    await asyncio.to_thread(Path(marker).write_text, "started")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        Path(marker).write_text("cancelled")  # noqa: ASYNC240  (no await while cancelled)
        raise
    return "slept"


def remove_workspace(podium_context: Any) -> str:
    """Removes the run's workspace: what a Ray node without the shared filesystem sees."""
    shutil.rmtree(podium_context.workspace)
    return "removed"


async def stubborn(path: str) -> str:
    """Writes its process id to `path`, then ignores every cancellation: only killing its
    worker stops it."""
    await asyncio.to_thread(Path(path).write_text, str(os.getpid()))
    while True:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            continue
