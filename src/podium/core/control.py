"""Checks for the control commands people send (retry, skip, cancel, approve, reject) and the
events they become; a signal that no longer fits when it is read becomes `signal.refused`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from podium.core import events as ev
from podium.core.happenings import ControlSignal
from podium.core.state import RunState, StepStatus, require_step
from podium.errors import InvalidTransitionError, RunError

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


ALL_OF = {"interrupted": StepStatus.INTERRUPTED, "failed": StepStatus.FAILED}


def steps_in(state: RunState, verb: str, which: str, now: datetime) -> list[str]:
    """Every step of the run that is `which` (interrupted or failed), each checked as a `verb`
    (retry or skip) of it alone would be: all of them can be, or InvalidTransitionError."""
    status = ALL_OF[which]
    chosen = [s.id for s in state.steps.values() if s.status is status]
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


def awaiting_plan(state: RunState, step_id: str | None) -> str:
    """The plan step awaiting approval: `step_id` if given, else the only one. A finished or
    stopping run's plan cannot be decided: it would leave the plan step stuck `waiting`."""
    sid = _awaiting(state, step_id)
    _require_open(state, sid)
    return sid


def _awaiting(state: RunState, step_id: str | None) -> str:
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


def _require_open(state: RunState, plan_step: str) -> None:
    if state.outcome is None and state.stopping is None:
        return
    rid = state.run_id
    if state.outcome is None:
        raise InvalidTransitionError(
            f"run {rid} is stopping ({state.stopping}); a plan cannot be decided on it; wait "
            "for it to finish, then reopen it with `podium retry`",
            run_id=rid,
        )
    reopen = _step_to_reopen(state, plan_step)
    how = f"`podium retry {rid} {reopen}`" if reopen else f"`podium retry {rid} STEP`"
    raise InvalidTransitionError(
        f"run {rid} is {state.outcome}, so no plan of it can be approved or rejected; reopen "
        f"it first with {how}, then decide the plan it waits on",
        run_id=rid,
    )


def _step_to_reopen(state: RunState, plan_step: str) -> str | None:
    """A failed step (what failed the run), else the plan step, else any step that can be
    retried."""
    failed = next((s.id for s in state.steps.values() if s.status is StepStatus.FAILED), None)
    if failed is not None:
        return failed
    if state.steps[plan_step].status in RETRYABLE:
        return plan_step
    return next((s.id for s in state.steps.values() if s.status in RETRYABLE), None)


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


def signal_event(state: RunState, signal: ControlSignal, now: datetime) -> ev.Event:
    """The event a control signal becomes when its driver reads it, or `signal.refused` saying
    why it no longer fits the run (it was valid when posted; the run moved on since)."""
    step_id = signal.payload.get("step_id")
    if step_id is not None and not isinstance(step_id, str):
        return _refused(signal, None, f"step_id must be a string, got {step_id!r}", now)
    try:
        return _control_event(state, signal, step_id, now)
    except RunError as exc:
        return _refused(signal, step_id, str(exc), now)


def _control_event(
    state: RunState, signal: ControlSignal, step_id: str | None, now: datetime
) -> ev.Event:
    payload = signal.payload
    if signal.kind == "cancel":
        return cancel_event(state, now, str(payload.get("reason", "")))
    if signal.kind == "approve":
        plan = payload.get("plan")
        return approve_event(state, step_id, now, dict(plan) if isinstance(plan, dict) else None)
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
