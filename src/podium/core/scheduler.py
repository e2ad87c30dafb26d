"""`decide(state, now)`: what happens next in a run, as events to record and effects to carry out.

Pure: the result depends only on the state (a fold of events), `now` and `slots`.
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from podium.core import events as ev
from podium.core.state import RunState, StepState, StepStatus
from podium.spec.expr import ExpressionError, evaluate, truthy
from podium.spec.template import parse_condition


@dataclass(frozen=True, slots=True)
class Decision:
    """`events` are applied and committed in order; `start` lists the steps whose `StepStarted`
    is among them (launch after the commit); `cancel` lists running steps to cancel now;
    `wake_at` is the earliest parked timer."""

    events: list[ev.Event] = field(default_factory=list)
    start: list[str] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    wake_at: datetime | None = None


_IDLE = Decision()


def decide(state: RunState, now: datetime, *, slots: int | None = None) -> Decision:
    """Next events for the run. `slots` caps new starts (engine-wide limits), None = no cap."""
    if state.outcome is not None:
        return _IDLE
    if state.stopping is not None:
        return _stop(state, now)
    events: list[ev.Event] = [
        _doom(state, sid, reason, now) for sid, reason in state.doomed.items()
    ]
    cancel = [sid for sid in state.losers if sid in state.running]
    events += [
        ev.StepCancelled(at=now, step_id=sid, reason="lost_race")
        for sid in state.losers
        if sid not in state.running
    ]
    start = _starts(state, now, _capacity(state, slots), events)
    if not events and not state.running and state.unfinished == 0:
        events.append(_completion(state, now))
    wake_at = min(state.retrying.values()) if state.retrying else None
    return Decision(events=events, start=start, cancel=cancel, wake_at=wake_at)


def _capacity(state: RunState, slots: int | None) -> int | None:
    limit = state.workflow.max_concurrency
    free = None if limit is None else max(limit - len(state.running), 0)
    if slots is None:
        return free
    return slots if free is None else min(free, slots)


def _candidates(state: RunState, now: datetime, capacity: int | None) -> list[StepState]:
    """Ready steps and due retries, longest remaining path first."""
    steps = state.steps
    due = [steps[sid] for sid, at in state.retrying.items() if at <= now]
    ready = state.ready
    if capacity is None or capacity >= len(ready):
        entries = sorted(ready)
    else:
        entries = heapq.nsmallest(capacity, ready)
    chosen = [steps[e[2]] for e in entries if steps[e[2]].status is StepStatus.READY]
    if due:
        chosen = sorted(chosen + due, key=lambda s: (-s.rank, s.index))
    return chosen if capacity is None else chosen[:capacity]


def _starts(
    state: RunState, now: datetime, capacity: int | None, events: list[ev.Event]
) -> list[str]:
    if capacity == 0:
        return []
    start: list[str] = []
    for step in _candidates(state, now, capacity):
        if step.id in state.losers:
            continue
        gate = _gate(state, step, now)
        if gate is not None:
            events.append(gate)
            continue
        attempt = step.attempts if step.requeued else step.attempts + 1
        events.append(
            ev.StepStarted(at=now, step_id=step.id, attempt=attempt, generation=step.generation)
        )
        start.append(step.id)
    return start


def _gate(state: RunState, step: StepState, now: datetime) -> ev.Event | None:
    """A `when` condition, checked before the first attempt: skip or fail instead of start."""
    condition = step.spec.when
    if condition is None or step.attempts > 0 or step.requeued:
        return None
    try:
        passed = truthy(evaluate(parse_condition(condition), state.template_context()))
    except ExpressionError as exc:
        return ev.StepFailed(
            at=now, step_id=step.id, attempt=0, error=f"when: {exc}", error_type="condition"
        )
    if passed:
        return None
    return ev.StepSkipped(at=now, step_id=step.id, reason="condition", message=f"when: {condition}")


def _doom(state: RunState, step_id: str, reason: ev.SkipReason, now: datetime) -> ev.StepSkipped:
    step = state.steps[step_id]
    upstream = [n for n in step.spec.needs if state.steps[n].status is not StepStatus.SUCCEEDED]
    what = "failed or was cancelled" if reason == "upstream_failed" else "was skipped"
    message = f"a step it needs {what}: {', '.join(upstream)}"
    return ev.StepSkipped(at=now, step_id=step_id, reason=reason, message=message)


def _stop(state: RunState, now: datetime) -> Decision:
    """Fail-fast or cancel: cancel what waits, cancel what runs, complete when nothing runs."""
    reason: ev.CancelReason = "fail_fast" if state.stopping == "fail_fast" else "run_cancelled"
    events: list[ev.Event] = [
        ev.StepCancelled(at=now, step_id=s.id, reason=reason)
        for s in state.steps.values()
        if not s.terminal and s.status is not StepStatus.RUNNING
    ]
    if not state.running:
        events.append(_completion(state, now))
    return Decision(events=events, cancel=sorted(state.running))


def _completion(state: RunState, now: datetime) -> ev.RunCompleted:
    if state.stopping == "cancel":
        return ev.RunCompleted(at=now, outcome="cancelled", error="cancelled on request")
    if state.failures:
        details = "; ".join(
            f"{sid}: {state.steps[sid].error or 'failed'}" for sid in state.failures[:5]
        )
        more = f" (and {len(state.failures) - 5} more)" if len(state.failures) > 5 else ""
        return ev.RunCompleted(at=now, outcome="failed", error=f"{details}{more}")
    return ev.RunCompleted(at=now, outcome="succeeded")


def failure_event(
    state: RunState,
    step_id: str,
    *,
    attempt: int,
    error: str,
    retryable: bool,
    error_type: str,
    now: datetime,
) -> ev.StepRetrying | ev.StepFailed:
    """A failed attempt becomes a parked retry (backoff with deterministic jitter) or a failure."""
    step = state.steps[step_id]
    policy = step.spec.retry
    if retryable and attempt < policy.max_attempts and state.stopping is None:
        unit = _unit_random(f"{state.run_id}:{step_id}:{step.generation}:{attempt}")
        delay = policy.delay_seconds(attempt, unit)
        return ev.StepRetrying(
            at=now,
            step_id=step_id,
            attempt=attempt,
            error=error,
            error_type=error_type,
            retry_at=now + timedelta(seconds=delay),
        )
    return ev.StepFailed(
        at=now, step_id=step_id, attempt=attempt, error=error, error_type=error_type
    )


def _unit_random(seed: str) -> float:
    digest = hashlib.blake2b(seed.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def recover(state: RunState, now: datetime) -> ev.RunResumed:
    """On take-over: idempotent in-flight steps are requeued, the others are interrupted."""
    requeued: list[str] = []
    interrupted: list[str] = []
    for step_id in sorted(state.running, key=lambda s: state.steps[s].index):
        step = state.steps[step_id]
        (requeued if step.spec.is_idempotent else interrupted).append(step_id)
    return ev.RunResumed(at=now, requeued=requeued, interrupted=interrupted)
