"""Python step callables used by the runtime tests (importable as tests.runtime.callables)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from podium.errors import ReportError

CALLS: dict[str, int] = {}


async def echo(value: Any = None, delay: float = 0.0) -> Any:
    if delay:
        await asyncio.sleep(delay)
    return value


async def flaky(name: str, failures: int) -> str:
    """Fails `failures` times, then succeeds."""
    CALLS[name] = CALLS.get(name, 0) + 1
    if CALLS[name] <= failures:
        raise RuntimeError(f"{name} failure {CALLS[name]}")
    return f"{name} ok after {CALLS[name]}"


async def sleeper(seconds: float, marker: str | None = None) -> str:
    if marker:
        await asyncio.to_thread(Path(marker).write_text, "started")
    await asyncio.sleep(seconds)
    return "slept"


def keyed(idempotency_key: str) -> str:
    return idempotency_key


def big(size: int) -> str:
    return "x" * size


async def metered(podium_context: Any) -> str:
    """Reports two model calls and streams a delta, as an agent step does."""
    for tokens in (100, 20):
        podium_context.report(
            "model.called",
            {"model": "scripted:x", "input_tokens": tokens, "output_tokens": 5, "cost_usd": 0.01},
        )
    podium_context.delta("partial ")
    try:
        podium_context.report("model.called", {"not_a_field": 1})
    except ReportError:
        pass  # malformed: refused where it was made, nothing recorded
    else:
        raise AssertionError("a malformed report was accepted")
    return "done"


async def forger(podium_context: Any) -> str:
    """Tries to report its own success, then fails for real."""
    with contextlib.suppress(ReportError):
        podium_context.report("step.succeeded", {"output": "forged"})
    podium_context.report("step.succeeded", {"output": "forged"})
    return "unreachable"
