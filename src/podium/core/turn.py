"""The turn: fold what reached the driver since its last commit (finished and cancelled attempts,
reports, control signals, a take-over) into the run's state, render and start what became ready,
and decide again until nothing changes. Pure and deterministic; the runtime and the test
simulator both call `take_turn`, and only do I/O around it: commit `events` (and mark `consumed`
signals) in one append, then launch, cancel and sleep until `wake_at`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from podium.core import children, plans
from podium.core import events as ev
from podium.core.control import signal_events
from podium.core.feedback import feedback_signal_event
from podium.core.fold import apply
from podium.core.happenings import (
    AttemptCancelled,
    AttemptOutcome,
    ChildEnded,
    ControlSignal,
    Happening,
    Launch,
    Report,
    report_event,
)
from podium.core.outputs import cap_output
from podium.core.recovery import lost, takeover_events
from podium.core.render import RenderError, render_step
from podium.core.scheduler import decide, failure_event, stop_reason
from podium.core.state import RunState, StepState, StepStatus
from podium.core.tool_approvals import gate_of
from podium.ids import idempotency_key
from podium.spec.model import AgentStep, PlanStep, WorkflowStep


@dataclass(frozen=True, slots=True)
class Turn:
    """`events` were applied to the state, in order, and must be committed in one append that
    also marks `consumed` signals; then `launch` the attempts, cancel the running attempts in
    `cancel` (with the reason to record when they end), and wake again at `wake_at` at the
    latest."""

    events: list[ev.Event] = field(default_factory=list)
    launch: list[Launch] = field(default_factory=list)
    cancel: dict[str, ev.CancelReason] = field(default_factory=dict)
    consumed: list[int] = field(default_factory=list)
    wake_at: datetime | None = None


def take_turn(state: RunState, happenings: Iterable[Happening], now: datetime) -> Turn:
    """Fold `happenings` into `state` (in place), then decide until the core has nothing to add."""
    events: list[ev.Event] = []
    consumed: list[int] = []
    for happening in happenings:
        if isinstance(happening, ControlSignal):
            consumed.append(happening.id)
        events += absorb(state, happening, now)
    launches: list[Launch] = []
    while True:
        decision = decide(state, now)
        changed = _record(state, decision.events, events)
        for step_id in decision.start:
            launch, failed = _launch(state, step_id, now)
            if launch is not None:
                launches.append(launch)
            else:
                changed = _record(state, failed, events) or changed
        if not changed:
            reason = stop_reason(state.stopping)
            cancel = dict.fromkeys(decision.cancel, reason)
            return Turn(events, launches, cancel, consumed, decision.wake_at)


def absorb(state: RunState, happening: Happening, now: datetime) -> list[ev.Event]:
    """The events one happening becomes, applied to `state`. Stale ones become nothing: an
    outcome or report from an attempt that is no longer the step's running one is dropped.
    Every event is redacted (the run's `redactor`) before it is applied: state and store see
    the same, and neither sees a secret."""
    redact = state.redactor.model
    produced = [redact(event) for event in _events_for(state, happening, now)]
    for event in produced:
        apply(state, event)
    return produced


def _events_for(state: RunState, happening: Happening, now: datetime) -> list[ev.Event]:
    if isinstance(happening, AttemptOutcome):
        if not _is_running(state, happening.step_id, happening.attempt):
            return []
        if happening.lost:
            error = happening.error or "the process running the attempt died"
            return [lost(state, happening.step_id, happening.attempt, error, now)]
        return [outcome_event(state, happening, now)]
    if isinstance(happening, AttemptCancelled):
        if not _is_running(state, happening.step_id):
            return []
        return [ev.StepCancelled(at=now, step_id=happening.step_id, reason=happening.reason)]
    if isinstance(happening, Report):
        return _report(state, happening, now)
    if isinstance(happening, ChildEnded):
        return children.ended_events(state, happening, now)
    if isinstance(happening, ControlSignal) and happening.kind == "child":
        return children.signal_events(state, happening, now)
    if isinstance(happening, ControlSignal) and happening.kind == "feedback":
        return [feedback_signal_event(state, happening, now)]
    if isinstance(happening, ControlSignal):
        return signal_events(state, happening, now)
    return takeover_events(state, happening, now)


def _is_running(state: RunState, step_id: str, attempt: int | None = None) -> bool:
    step = state.steps.get(step_id)
    if step is None or step.status is not StepStatus.RUNNING:
        return False
    return attempt is None or step.attempts == attempt


def _report(state: RunState, report: Report, now: datetime) -> list[ev.Event]:
    """A report of the closed set from a running step; anything else is dropped (the channel
    that carried it already refused it at the source). Only an agent's tool loop holds a tool
    call for a person: any other step reporting one is dropped too."""
    if not _is_running(state, report.step_id):
        return []
    held = report.kind == "tool.approval_needed"
    if held and not isinstance(state.steps[report.step_id].spec, AgentStep):
        return []
    try:
        return [report_event(report, at=now)]
    except ValueError:
        return []


def outcome_event(state: RunState, outcome: AttemptOutcome, now: datetime) -> ev.Event:
    """A finished attempt's event: a plan step's plan, a success (output capped), a parked retry,
    or a failure."""
    step = state.steps[outcome.step_id]
    if outcome.error is None and isinstance(step.spec, PlanStep):
        record = state.plans.get(step.id)
        version = len(record.versions) + 1 if record is not None else 1
        return ev.PlanGenerated(at=now, step_id=step.id, version=version, plan=outcome.output)
    if outcome.error is None:
        output, truncated = cap_output(outcome.output, state.workflow.output_limit_bytes)
        return ev.StepSucceeded(
            at=now, step_id=step.id, output=output, truncated=truncated, meta=outcome.meta
        )
    return failure_event(
        state,
        step.id,
        attempt=outcome.attempt,
        error=outcome.error,
        retryable=outcome.retryable,
        error_type=outcome.error_type,
        now=now,
    )


def _launch(state: RunState, step_id: str, now: datetime) -> tuple[Launch | None, list[ev.Event]]:
    """What the started step's executor gets; a step whose templates cannot be rendered fails
    at once instead (not retryable: the same outputs render the same way)."""
    step = state.steps[step_id]
    if (too_deep := children.depth_problem(state, step.spec)) is not None:
        stop = ev.StepFailed(
            at=now, step_id=step_id, attempt=step.attempts, error=too_deep, error_type="budget"
        )
        return None, [stop]
    try:
        spec = render_step(state, step.spec)
    except RenderError as exc:
        failed = failure_event(
            state,
            step_id,
            attempt=step.attempts,
            error=str(exc),
            retryable=False,
            error_type="template",
            now=now,
        )
        return None, [failed]
    if isinstance(spec, WorkflowStep):  # its child run is the attempt: the runtime creates it
        return None, [children.start(state, step, spec, now)]
    launch = Launch(
        step_id=step_id,
        attempt=step.attempts,
        generation=step.generation,
        idempotency_key=idempotency_key(state.run_id, step_id, step.generation),
        step=spec,
        upstream={need: state.steps[need].output for need in spec.needs},
        history=_history(state, step),
        tool_gate=gate_of(state) if isinstance(spec, AgentStep) else None,
    )
    return launch, []


def _history(state: RunState, step: StepState) -> dict[str, Any]:
    """What an attempt is told of the past: a plan step its earlier plans and their outcome; a
    resumed agent step the turns and tool calls its attempt already made."""
    if isinstance(step.spec, PlanStep):
        return plans.history(state, step)
    told: dict[str, Any] = {}
    if step.transcript:
        told["transcript"] = list(step.transcript)
    if isinstance(step.spec, AgentStep) and state.policy.block_agents:
        told["blocked_agents"] = list(state.policy.block_agents)  # never a fallback
    return told


def _record(state: RunState, new: list[ev.Event], events: list[ev.Event]) -> bool:
    redact = state.redactor.model
    for event in map(redact, new):
        apply(state, event)
        events.append(event)
    return bool(new)


__all__ = ["Turn", "absorb", "outcome_event", "take_turn"]
