"""Checks for the control commands people send (retry, skip, cancel) and the events they become."""

from __future__ import annotations

from datetime import datetime

from podium.core import events as ev
from podium.core.state import RunState, StepStatus, require_step
from podium.errors import InvalidTransitionError

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
    step = require_step(state, step_id)
    if step.status not in SKIPPABLE:
        hint = (
            "cancel the run to stop it" if step.status is StepStatus.RUNNING else "nothing to skip"
        )
        raise InvalidTransitionError(
            f"step {step_id} is {step.status}; {hint}", run_id=state.run_id, step_id=step_id
        )
    return ev.StepSkipped(at=now, step_id=step_id, reason="manual", message="skipped by a person")


def cancel_event(state: RunState, now: datetime, reason: str = "") -> ev.RunCancelRequested:
    if state.outcome is not None:
        raise InvalidTransitionError(
            f"run {state.run_id} already {state.outcome}; nothing to cancel", run_id=state.run_id
        )
    return ev.RunCancelRequested(at=now, reason=reason)
