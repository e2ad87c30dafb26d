"""The executor port: what a step kind implements, and what it is given to run one attempt."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from podium.spec.model import StepBase


@dataclass(frozen=True, kw_only=True, slots=True)
class StepContext:
    """Everything an executor may use besides the (already rendered) step itself."""

    run_id: str
    step_id: str
    attempt: int
    idempotency_key: str
    workspace: Path
    output_limit_bytes: int
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepResult:
    """A successful attempt: the step's output (JSON-compatible) and small facts about it."""

    output: Any
    meta: dict[str, Any] | None = None


class Executor(Protocol):
    """Runs one attempt of one step kind.

    Raise `podium.errors.StepExecutionError` for a failure (with `retryable`); let
    `asyncio.CancelledError` propagate after cleaning up (kill processes, close sockets).
    """

    async def execute(self, step: StepBase, ctx: StepContext) -> StepResult: ...
