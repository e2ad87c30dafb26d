"""Python step callables for the crash harness. Each EXECUTION appends one JSON line to an effects
ledger (O_APPEND, then fsync) so the checker can count what really ran, whatever the event log
says. The podium subprocess imports them as `tests.crash.effects:<name>` (repo root on
PYTHONPATH)."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from podium.steps.python import PodiumContext

BLOCK_SECONDS = 30.0


def append_line(ledger: str | os.PathLike[str], entry: dict[str, Any]) -> None:
    """One line per call, written with a single O_APPEND write and fsynced."""
    data = (json.dumps(entry, sort_keys=True) + "\n").encode()
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def record(
    ledger: str,
    before: float = 0.0,
    after: float = 0.0,
    fail_first: bool = False,
    upstream: Any = None,
    *,
    idempotency_key: str,
    podium_context: PodiumContext,
) -> dict[str, Any]:
    """Sleep `before`, record this execution, sleep `after`; with `fail_first` the first attempt
    of each generation fails after recording (so `retry:` has something to do). `upstream` is a
    templated value from a dependency's committed output, recorded for the checker."""
    time.sleep(before)
    entry = {
        "step": podium_context.step_id,
        "key": idempotency_key,
        "attempt": podium_context.attempt,
        "token": uuid.uuid4().hex,
        "kind": "python",
        "pid": os.getpid(),
        "upstream": upstream,
    }
    append_line(ledger, entry)
    time.sleep(after)
    if fail_first and podium_context.attempt == 1:
        raise RuntimeError(f"flaky: attempt 1 of {podium_context.step_id} fails on purpose")
    return {"token": entry["token"], "key": idempotency_key, "attempt": podium_context.attempt}


def block_once(
    ledger: str, ready: str, *, idempotency_key: str, podium_context: PodiumContext
) -> dict[str, Any]:
    """Record the execution; the first time (no `ready` file yet) create `ready` and block for
    a long time so the test can SIGKILL the engine mid-flight; later executions return at once."""
    out = record(ledger, idempotency_key=idempotency_key, podium_context=podium_context)
    marker = Path(ready)
    if not marker.exists():
        marker.touch()
        time.sleep(BLOCK_SECONDS)
    return out
