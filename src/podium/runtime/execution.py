"""The execution port: the driver hands each attempt to a backend as a plain, picklable
`AttemptRequest`; the backend streams the attempt's reports and live output back through an
`AttemptSink` and returns one `AttemptOutcome`. The in-process backend is the default; a Ray
backend runs the same requests elsewhere."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from podium import telemetry
from podium.core.happenings import AttemptOutcome, Launch, Report, make_report
from podium.core.redact import PATTERNS_ONLY, Redactor
from podium.core.tool_approvals import ToolGate
from podium.errors import StepExecutionError
from podium.spec.model import StepBase, Workflow
from podium.spec.policy import Policy
from podium.steps import Executors
from podium.steps.base import AgentServices, StepContext


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptRequest:
    """Everything one attempt needs, as plain data: the rendered step, where it belongs, the
    idempotency key the far side can deduplicate on and the lease epoch it runs under."""

    run_id: str
    step_id: str
    attempt: int
    generation: int
    idempotency_key: str
    lease_epoch: int
    workspace: Path
    output_limit_bytes: int
    step: StepBase
    upstream: Mapping[str, Any] = field(default_factory=dict)
    history: Mapping[str, Any] = field(default_factory=dict)
    tool_gate: ToolGate | None = None
    policy: Policy = field(default_factory=Policy)
    protected: tuple[Path, ...] = ()
    redactor: Redactor = PATTERNS_ONLY  # the run's: what the attempt's logs and outcome hide

    @classmethod
    def of(
        cls,
        launch: Launch,
        *,
        run_id: str,
        epoch: int,
        workspace: Path,
        output_limit_bytes: int,
        policy: Policy | None = None,
        protected: tuple[Path, ...] = (),
        redactor: Redactor = PATTERNS_ONLY,
    ) -> AttemptRequest:
        return cls(
            run_id=run_id,
            step_id=launch.step_id,
            attempt=launch.attempt,
            generation=launch.generation,
            idempotency_key=launch.idempotency_key,
            lease_epoch=epoch,
            workspace=workspace,
            output_limit_bytes=output_limit_bytes,
            step=launch.step,
            upstream=launch.upstream,
            history=launch.history,
            tool_gate=launch.tool_gate,
            policy=policy or Policy(),
            protected=protected,
            redactor=redactor,
        )

    def context(self) -> StepContext:
        return StepContext(
            run_id=self.run_id,
            step_id=self.step_id,
            attempt=self.attempt,
            idempotency_key=self.idempotency_key,
            workspace=self.workspace,
            output_limit_bytes=self.output_limit_bytes,
            upstream=self.upstream,
            history=self.history,
            tool_gate=self.tool_gate,
            policy=self.policy,
            protected=self.protected,
            redactor=self.redactor,
        )


class AttemptSink(Protocol):
    """Where a backend sends what a running attempt tells: checked reports, and live output."""

    def report(self, report: Report) -> None: ...

    async def checkpoint(self, report: Report) -> None:
        """Send `report` and return once the run has committed it."""
        ...

    def delta(self, text: str) -> None: ...


class ExecutionBackend(Protocol):
    """Runs attempts. `execute` returns the attempt's outcome (failures are values); only
    cancellation propagates, after the attempt was stopped."""

    async def execute(self, request: AttemptRequest, sink: AttemptSink) -> AttemptOutcome: ...

    async def prepare(self, workflow: Workflow | None = None) -> None:
        """Make sure `workflow`'s attempts can run (None: what the backend was configured
        with), or raise UsageError saying why not (an unreachable Ray cluster). Called when an
        engine opens and before a run is recorded."""
        ...

    async def aclose(self) -> None: ...


class InProcessBackend:
    """Runs attempts as tasks of this event loop, with the engine's executors and agent services."""

    def __init__(self, executors: Executors, agents: AgentServices | None = None) -> None:
        self.executors = executors
        self.agents = agents

    async def execute(self, request: AttemptRequest, sink: AttemptSink) -> AttemptOutcome:
        step = request.step
        agent = getattr(step, "agent", None)
        with telemetry.step_span(
            request.run_id, request.step_id, _kind(step), request.attempt, agent=agent
        ) as span:
            outcome = await self._attempt(request, _AttemptServices(request.step_id, sink, self))
            outcome = redacted(outcome, request.redactor)
            if outcome.error is not None:
                span.fail(outcome.error_type, outcome.error)
            return outcome

    async def _attempt(self, request: AttemptRequest, services: _AttemptServices) -> AttemptOutcome:
        step, attempt = request.step, request.attempt
        try:
            executor = self.executors.get(_kind(step))
            if step.timeout is None:
                result = await executor.execute(step, request.context(), services)
            else:
                async with asyncio.timeout(step.timeout):
                    result = await executor.execute(step, request.context(), services)
        except TimeoutError:
            error = f"timed out after {step.timeout:g}s"
            return AttemptOutcome(
                step.id, attempt, error=error, retryable=True, error_type="timeout"
            )
        except StepExecutionError as exc:
            return AttemptOutcome(
                step.id, attempt, error=str(exc), retryable=exc.retryable, error_type=exc.error_type
            )
        except Exception as exc:  # an executor bug must not kill the run's driver
            error = f"{type(exc).__name__}: {exc}"
            return AttemptOutcome(step.id, attempt, error=error, error_type="internal")
        return AttemptOutcome(step.id, attempt, output=result.output, meta=result.meta)

    async def prepare(self, workflow: Workflow | None = None) -> None:
        return None

    async def aclose(self) -> None:
        return None


def redacted(outcome: AttemptOutcome, redactor: Redactor) -> AttemptOutcome:
    """The outcome with every secret of its error replaced, before a span records it. Its
    output and meta are not walked here: the core redacts the event the outcome becomes
    (core/turn.py), the one place every event passes."""
    if outcome.error is None:
        return outcome
    error = redactor.text(outcome.error)
    return outcome if error is outcome.error else dataclasses.replace(outcome, error=error)


def _kind(step: StepBase) -> str:
    return str(step.kind)  # type: ignore[attr-defined]  # every concrete step kind has one


class _AttemptServices:
    """The `StepServices` of one in-process attempt: checked reports and deltas go to its sink."""

    __slots__ = ("_backend", "_sink", "_step_id")

    def __init__(self, step_id: str, sink: AttemptSink, backend: InProcessBackend) -> None:
        self._step_id = step_id
        self._sink = sink
        self._backend = backend

    def report(self, kind: str, data: Mapping[str, Any]) -> None:
        self._sink.report(make_report(self._step_id, kind, data))

    async def checkpoint(self, kind: str, data: Mapping[str, Any]) -> None:
        await self._sink.checkpoint(make_report(self._step_id, kind, data))

    def delta(self, text: str) -> None:
        self._sink.delta(text)

    @property
    def agents(self) -> AgentServices | None:
        return self._backend.agents


__all__ = ["AttemptRequest", "AttemptSink", "ExecutionBackend", "InProcessBackend"]
