"""One attempt of one step: render its templates, run its executor under its timeout, and report
the outcome. Failures become values here; only cancellation propagates."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from podium import telemetry
from podium.core import plans
from podium.core.state import RunState, StepState
from podium.errors import StepExecutionError
from podium.ids import idempotency_key
from podium.spec.model import PlanStep, StepBase
from podium.spec.template import TemplateError, render_value
from podium.steps import StepContext, executor_for


@dataclass(frozen=True, slots=True)
class Outcome:
    step_id: str
    attempt: int
    output: Any = None
    meta: dict[str, Any] | None = None
    error: str | None = None
    retryable: bool = False
    error_type: str = "error"


@dataclass(frozen=True, slots=True)
class Channels:
    """What an attempt may send back while it runs: reports to record, live output deltas, and
    the runtime's shared services."""

    report: Callable[[str, dict[str, Any]], None]
    on_delta: Callable[[str], None] | None = None
    services: Any = None


def prepare(
    state: RunState, step: StepState, channels: Channels | None = None
) -> tuple[StepBase, StepContext]:
    """Render the step against committed outputs; build its context. Raises StepExecutionError."""
    spec = step.spec
    if spec.templated:
        spec = _render(state, spec)
    ctx = StepContext(
        run_id=state.run_id,
        step_id=step.id,
        attempt=step.attempts,
        idempotency_key=idempotency_key(state.run_id, step.id, step.generation),
        workspace=state.workspace_path,
        output_limit_bytes=state.workflow.output_limit_bytes,
        upstream={need: state.steps[need].output for need in spec.needs},
        history=plans.history(state, step) if isinstance(spec, PlanStep) else {},
        **_channel_fields(channels),
    )
    return spec, ctx


def _channel_fields(channels: Channels | None) -> dict[str, Any]:
    if channels is None:
        return {}
    return {
        "report": channels.report,
        "on_delta": channels.on_delta,
        "services": channels.services,
    }


def _render(state: RunState, spec: StepBase) -> StepBase:
    changes: dict[str, Any] = {}
    context: dict[str, Any] | None = None
    for name in spec.templated:
        value = getattr(spec, name)
        if not _has_template(value):
            continue
        context = context or state.template_context()
        try:
            changes[name] = render_value(value, context)
        except (TemplateError, ValueError) as exc:
            raise StepExecutionError(
                f"{name}: {exc}", retryable=False, error_type="template"
            ) from exc
    if not changes:
        return spec
    try:
        return type(spec).model_validate({**spec.model_dump(exclude_unset=True), **changes})
    except ValueError as exc:
        raise StepExecutionError(
            f"rendered step is invalid: {exc}", retryable=False, error_type="template"
        ) from exc


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return "${{" in value
    if isinstance(value, dict):
        return any(_has_template(k) or _has_template(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return False


async def run_attempt(
    state: RunState, step: StepState, channels: Channels | None = None
) -> Outcome:
    """Run one attempt inside its tracing span; failures come back as Outcomes."""
    kind = step.spec.kind  # type: ignore[attr-defined]
    agent = getattr(step.spec, "agent", None)
    with telemetry.step_span(state.run_id, step.id, kind, step.attempts, agent=agent) as span:
        outcome = await _attempt(state, step, channels)
        if outcome.error is not None:
            span.fail(outcome.error_type, outcome.error)
        return outcome


async def _attempt(state: RunState, step: StepState, channels: Channels | None) -> Outcome:
    """Every failure is returned as an Outcome; cancellation propagates."""
    attempt = step.attempts
    try:
        spec, ctx = prepare(state, step, channels)
        executor = executor_for(spec.kind)  # type: ignore[attr-defined]
        if spec.timeout is None:
            result = await executor.execute(spec, ctx)
        else:
            async with asyncio.timeout(spec.timeout):
                result = await executor.execute(spec, ctx)
    except TimeoutError:
        return Outcome(
            step.id,
            attempt,
            error=f"timed out after {step.spec.timeout:g}s",
            retryable=True,
            error_type="timeout",
        )
    except StepExecutionError as exc:
        return Outcome(
            step.id, attempt, error=str(exc), retryable=exc.retryable, error_type=exc.error_type
        )
    except Exception as exc:  # an executor bug must not kill the run's driver
        return Outcome(
            step.id,
            attempt,
            error=f"{type(exc).__name__}: {exc}",
            retryable=False,
            error_type="internal",
        )
    return Outcome(step.id, attempt, output=result.output, meta=result.meta)
