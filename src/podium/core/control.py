"""Checks for the control commands people send (retry, skip, cancel, approve, reject) and the
events they become; a signal that no longer fits when it is read becomes `signal.refused`."""

from __future__ import annotations

from datetime import datetime

from podium.core import events as ev
from podium.core import loops, recovery
from podium.core.approvals import approve_event, reject_event
from podium.core.happenings import ControlSignal
from podium.core.state import RunState, StepState, StepStatus, require_step
from podium.errors import InvalidTransitionError, PodiumError

RETRYABLE = frozenset(
    {StepStatus.FAILED, StepStatus.INTERRUPTED, StepStatus.CANCELLED, StepStatus.SKIPPED}
)
SKIPPABLE = frozenset(
    {
        StepStatus.PENDING,
        StepStatus.READY,
        StepStatus.RETRYING,
        StepStatus.INTERRUPTED,
        StepStatus.FAILED,
    }
)


def retry_event(state: RunState, step_id: str, now: datetime) -> ev.StepRetryRequested:
    step = require_step(state, step_id)
    _in_closed_loop(state, step, "retry")
    if step.status not in RETRYABLE:
        raise InvalidTransitionError(
            f"step {step_id} is {step.status}; only failed, interrupted, cancelled or skipped "
            "steps can be retried",
            run_id=state.run_id,
            step_id=step_id,
        )
    if state.stopping == "cancel" and state.outcome is None:
        raise InvalidTransitionError(
            f"run {state.run_id} is being cancelled; wait for it to finish, then retry",
            run_id=state.run_id,
            step_id=step_id,
        )
    return ev.StepRetryRequested(at=now, step_id=step_id)


def skip_event(state: RunState, step_id: str, now: datetime) -> ev.StepSkipped:
    """A person skips a step that has not started, waits for a retry, was interrupted, failed,
    or waits for approval (see `signal_events`: that approval is withdrawn first)."""
    step = require_step(state, step_id)
    _in_closed_loop(state, step, "skip")
    if step.status not in SKIPPABLE and step_id not in state.approvals:
        hint = (
            "cancel the run to stop it" if step.status is StepStatus.RUNNING else "nothing to skip"
        )
        raise InvalidTransitionError(
            f"step {step_id} is {step.status}; {hint}", run_id=state.run_id, step_id=step_id
        )
    return ev.StepSkipped(at=now, step_id=step_id, reason="manual", message="skipped by a person")


ALL_OF = {"interrupted": StepStatus.INTERRUPTED, "failed": StepStatus.FAILED}


def _in_closed_loop(state: RunState, step: StepState, verb: str) -> None:
    """A step of a loop's iteration is retried or skipped only while its loop runs."""
    loop_id = loops.closed_loop(state, step)
    if loop_id is not None:
        raise InvalidTransitionError(
            f"step {step.id} belongs to an iteration of loop {loop_id}, which is "
            f"{state.steps[loop_id].status}; {verb} {loop_id} instead"
            + (" (it starts over at iteration 1)" if verb == "retry" else ""),
            run_id=state.run_id,
            step_id=step.id,
        )


def steps_in(state: RunState, verb: str, which: str, now: datetime) -> list[str]:
    """Every step of the run that is `which` (interrupted or failed), each checked as a `verb`
    (retry or skip) of it alone would be: all of them can be, or InvalidTransitionError."""
    status = ALL_OF[which]
    chosen = [
        s.id
        for s in state.steps.values()
        if s.status is status and loops.closed_loop(state, s) is None  # its loop's, not alone
    ]
    if not chosen:
        raise InvalidTransitionError(
            f"run {state.run_id} has no {which} steps; nothing to {verb}"
            + (f" (it is {state.status})" if state.status else ""),
            run_id=state.run_id,
        )
    check = retry_event if verb == "retry" else skip_event
    for step_id in chosen:
        check(state, step_id, now)
    return chosen


def cancel_event(state: RunState, now: datetime, reason: str = "") -> ev.RunCancelRequested:
    if state.outcome is not None:
        raise InvalidTransitionError(
            f"run {state.run_id} already {state.outcome}; nothing to cancel", run_id=state.run_id
        )
    return ev.RunCancelRequested(at=now, reason=reason)


def signal_events(state: RunState, signal: ControlSignal, now: datetime) -> list[ev.Event]:
    """The events a control signal becomes (`signal_event`); skipping a step that waits for a
    person is two: its approval withdrawn (reason `skipped`), then the skip. A retry or skip in
    a dead-lettered run revives it first."""
    event = signal_event(state, signal, now)
    if isinstance(event, ev.SignalRefused):
        return [event]
    revived = recovery.revival(state, now) if signal.kind in ("retry", "skip") else []
    if isinstance(event, ev.StepSkipped) and event.step_id in state.approvals:
        withdrawn = ev.ApprovalWithdrawn(at=now, step_id=event.step_id, reason="skipped")
        return [*revived, withdrawn, event]
    return [*revived, event]


def signal_event(state: RunState, signal: ControlSignal, now: datetime) -> ev.Event:
    """The event a control signal becomes when its driver reads it, or `signal.refused` saying
    why it no longer fits the run (it was valid when posted; the run moved on since)."""
    step_id = signal.payload.get("step_id")
    if step_id is not None and not isinstance(step_id, str):
        return _refused(signal, None, f"step_id must be a string, got {step_id!r}", now)
    try:
        return _control_event(state, signal, step_id, now)
    except PodiumError as exc:
        return _refused(signal, step_id, str(exc), now)


def _control_event(
    state: RunState, signal: ControlSignal, step_id: str | None, now: datetime
) -> ev.Event:
    payload = signal.payload
    if signal.kind == "cancel":
        return cancel_event(state, now, str(payload.get("reason", "")))
    if signal.kind == "approve":
        plan, edits = payload.get("plan"), payload.get("edits")
        return approve_event(
            state,
            step_id,
            now,
            plan=dict(plan) if isinstance(plan, dict) else None,
            edits=dict(edits) if isinstance(edits, dict) else None,
            answer=(payload["answer"],) if "answer" in payload else None,
        )
    if signal.kind == "reject":
        return reject_event(state, step_id, now, str(payload.get("reason", "")))
    if signal.kind in ("retry", "skip") and step_id is None:
        raise InvalidTransitionError(f"a {signal.kind} signal names no step", run_id=state.run_id)
    if signal.kind == "retry":
        return retry_event(state, str(step_id), now)
    if signal.kind == "skip":
        return skip_event(state, str(step_id), now)
    raise InvalidTransitionError(
        f"unknown signal kind {signal.kind!r}; known: cancel, retry, skip, approve, reject",
        run_id=state.run_id,
    )


def _refused(
    signal: ControlSignal, step_id: str | None, reason: str, now: datetime
) -> ev.SignalRefused:
    return ev.SignalRefused(
        at=now, signal_id=signal.id, signal=signal.kind, step_id=step_id, reason=reason
    )
