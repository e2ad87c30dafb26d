"""Takeovers: what a new driver records about the steps its predecessor left in flight, and the
limit after which a run that keeps losing its drivers is dead-lettered instead of driven again.

A takeover counts as a recovery when the previous driver died (its lease expired or its process
was gone), not when it gave the run back (a drained worker, a closed engine). Recoveries count
in a row: a step finishing in between resets them (`reset`), so a long run that outlives several
crashed workers is not mistaken for one that crashes them.
"""

from __future__ import annotations

from datetime import datetime

from podium.core import events as ev
from podium.core.happenings import MAX_RECOVERIES, TakenOver
from podium.core.joins import make_ready
from podium.core.state import RunState, StepState, StepStatus


def takeover_events(state: RunState, taken: TakenOver, now: datetime) -> list[ev.Event]:
    """`run.resumed` (idempotent in-flight steps requeued, the others interrupted), or
    `run.dead_lettered` once this takeover is one more than `taken.max_recoveries`."""
    if not state.running:
        return []
    stopped = list(taken.stopped)
    recovery = state.recoveries + 1 if taken.crashed else 0
    if taken.crashed and recovery > taken.max_recoveries:
        steps = _in_flight(state)
        reason = (
            f"taken over {recovery} times in a row from drivers that died while "
            f"{', '.join(steps)} ran, with no step finishing in between (max_recoveries is "
            f"{taken.max_recoveries}); look at those steps' logs, then `podium retry "
            f"{state.run_id}` to run them again or `podium cancel {state.run_id}`"
        )
        return [
            ev.RunDeadLettered(
                at=now, reason=reason, recoveries=recovery, interrupted=steps, stopped=stopped
            )
        ]
    requeued: list[str] = []
    interrupted: list[str] = []
    for step_id in _in_flight(state):
        (requeued if _may_run_again(state.steps[step_id]) else interrupted).append(step_id)
    return [
        ev.RunResumed(
            at=now,
            requeued=requeued,
            interrupted=interrupted,
            stopped=stopped,
            recovery=recovery,
        )
    ]


def lost(state: RunState, step_id: str, attempt: int, error: str, now: datetime) -> ev.StepLost:
    """One running step whose attempt's process died (a Ray worker, say) while its driver lives
    on: what a takeover does for it, for that step alone. Not a recovery: the driver did not
    die."""
    again = _may_run_again(state.steps[step_id])
    return ev.StepLost(at=now, step_id=step_id, attempt=attempt, error=error, requeued=again)


def revival(state: RunState, now: datetime) -> list[ev.Event]:
    """What a person's retry or skip in a dead-lettered run starts with: bringing it back."""
    return [ev.RunRevived(at=now)] if state.dead is not None else []


def reset(state: RunState) -> None:
    """A step finished: the run makes progress, so its takeovers no longer count in a row."""
    state.recoveries = 0


# ------------------------------------------------------------------------------------------ fold


def resumed(state: RunState, e: ev.RunResumed) -> None:
    state.recoveries = e.recovery
    for step_id in e.requeued:
        step = state.steps[step_id]
        state.running.discard(step_id)
        step.requeued = True
        make_ready(state, step)
    for step_id in e.interrupted:
        state.running.discard(step_id)
        state.steps[step_id].status = StepStatus.INTERRUPTED


def lost_step(state: RunState, e: ev.StepLost) -> None:
    """One step of `resumed`: its attempt's process died, and the event says why."""
    step = state.steps[e.step_id]
    state.running.discard(step.id)
    step.error = e.error
    if e.requeued:
        step.requeued = True
        make_ready(state, step)
    else:
        step.status = StepStatus.INTERRUPTED


def dead_lettered(state: RunState, e: ev.RunDeadLettered) -> None:
    state.recoveries = e.recoveries
    state.dead = e.reason
    for step_id in e.interrupted:
        state.running.discard(step_id)
        state.steps[step_id].status = StepStatus.INTERRUPTED


def revived(state: RunState, e: ev.RunRevived) -> None:
    state.dead = None
    state.recoveries = 0


# ------------------------------------------------------------------------------------- internals


def _in_flight(state: RunState) -> list[str]:
    return sorted(state.running, key=lambda s: state.steps[s].index)


def _may_run_again(step: StepState) -> bool:
    """Whether an in-flight attempt whose end nobody heard may simply run again."""
    return step.spec.is_idempotent and not _unsafe_call_in_flight(step)


def _unsafe_call_in_flight(step: StepState) -> bool:
    """An agent step that had started a tool call which may have side effects, and whose result
    was not recorded: running the step on would make that call a second time."""
    entries = step.transcript or ()
    done = {e["call_id"] for e in entries if e["kind"] == "tool"}
    return any(
        e["kind"] == "tool_started" and e["call_id"] not in done and not e["safe"] for e in entries
    )


__all__ = ["MAX_RECOVERIES", "lost", "revival", "takeover_events"]
