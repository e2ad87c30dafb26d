"""Checks for the control commands people send (retry, skip, cancel) and the events they become."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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


def awaiting_plan(state: RunState, step_id: str | None) -> str:
    """The plan step awaiting approval: `step_id` if given, else the only one."""
    waiting = [sid for sid, record in state.plans.items() if record.awaiting]
    if step_id is not None:
        require_step(state, step_id)
        if step_id not in waiting:
            raise InvalidTransitionError(
                f"step {step_id} has no plan awaiting approval",
                run_id=state.run_id,
                step_id=step_id,
            )
        return step_id
    if len(waiting) != 1:
        which = ", ".join(waiting) if waiting else "none"
        raise InvalidTransitionError(
            f"run {state.run_id} has {len(waiting)} plans awaiting approval ({which}); "
            + ("name the step" if waiting else "nothing to approve"),
            run_id=state.run_id,
        )
    return waiting[0]


def approve_event(
    state: RunState, step_id: str | None, now: datetime, plan: dict[str, Any] | None = None
) -> ev.PlanApproved:
    sid = awaiting_plan(state, step_id)
    version = len(state.plans[sid].versions) + (1 if plan is not None else 0)
    return ev.PlanApproved(at=now, step_id=sid, version=version, plan=plan)


def reject_event(
    state: RunState, step_id: str | None, now: datetime, reason: str
) -> ev.PlanRejected:
    sid = awaiting_plan(state, step_id)
    version = len(state.plans[sid].versions)
    return ev.PlanRejected(at=now, step_id=sid, version=version, reason=reason)
