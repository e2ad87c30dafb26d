"""The executor port: what a step kind implements, and what it is given to run one attempt."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from podium.spec.model import StepBase


@dataclass(frozen=True, kw_only=True, slots=True)
class StepContext:
    """Everything an executor may use besides the (already rendered) step itself.

    `upstream` holds the outputs of the step's needs (for context passing); `report(kind, data)`
    tells the run's driver about something worth recording while the attempt runs (a model call
    and its usage, as kind "model.called" with the fields of `ModelCalled`); `on_delta` streams
    live output to subscribers (not stored); `services` carries the runtime's shared services for
    executors that need them (agent catalog, models, tools).
    """

    run_id: str
    step_id: str
    attempt: int
    idempotency_key: str
    workspace: Path
    output_limit_bytes: int
    env: Mapping[str, str] = field(default_factory=dict)
    upstream: Mapping[str, Any] = field(default_factory=dict)
    history: Mapping[str, Any] = field(default_factory=dict)
    report: Callable[[str, dict[str, Any]], None] = field(default=lambda kind, data: None)
    on_delta: Callable[[str], None] | None = None
    services: Any = None


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
