"""`decide(state, now)`: what happens next in a run, as events to record and effects to carry out.

Pure: the result depends only on the state (a fold of events) and `now`. `core.turn.take_turn`
calls it until it has nothing more to say.
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from podium.core import approvals, loops
from podium.core import events as ev
from podium.core.budget import BudgetUsage, Exceeded, check, check_before_start
from podium.core.state import RunState, StepState, StepStatus
from podium.spec.expr import ExpressionError, evaluate, truthy
from podium.spec.model import Budget
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


def decide(state: RunState, now: datetime) -> Decision:
    """Next events for the run."""
    if state.outcome is not None:
        return _IDLE
    if state.stopping is None and (over := _over_budget(state, now)) is not None:
        return Decision(events=[over])
    if state.stopping is not None:
        return _stop(state, now)
    events: list[ev.Event] = [
        _doom(state, sid, reason, now) for sid, reason in state.doomed.items()
    ]
    events += [
        _settle(state, plan_id, ok, result, now)
        for plan_id, (ok, result) in list(state.settled_plans.items())
    ]
    events += loops.decisions(state, now, _usage(state))
    cancel = [sid for sid in state.losers if sid in state.running]
    events += approvals.withdrawals(state, now)
    events += approvals.timeouts(state, now)
    events += approvals.plan_requests(state, now)
    events += [
        ev.StepCancelled(at=now, step_id=sid, reason="lost_race")
        for sid in state.losers
        if sid not in state.running
    ]
    start = _starts(state, now, _capacity(state), events)
    if not events and not state.running and state.unfinished == 0:
        events.append(_completion(state, now))
    return Decision(events=events, start=start, cancel=cancel, wake_at=_wake_at(state))


def _wake_at(state: RunState) -> datetime | None:
    """The earliest parked timer: a retry, or the wall-time budget running out."""
    times = list(state.retrying.values()) + approvals.deadlines(state)
    budget = state.workflow.budget
    if budget is not None and budget.wall_seconds is not None and state.unfinished:
        times.append(state.created_at + timedelta(seconds=budget.wall_seconds))
    return min(times) if times else None


def _usage(state: RunState) -> BudgetUsage:
    return BudgetUsage(
        started_at=state.created_at,
        tokens=state.tokens,
        cost_usd=state.cost_usd,
        steps_started=state.steps_started,
        running=len(state.running),
        loop_iterations=state.loop_iterations,
    )


def _step_budget(state: RunState, now: datetime, fresh: int) -> ev.BudgetExceeded | None:
    """Would starting one more step (beyond `fresh` already started this turn) break a budget?"""
    budget = state.workflow.budget
    if budget is None or budget.steps is None:
        return None
    usage = _usage(state)
    usage = replace(usage, steps_started=usage.steps_started + fresh)
    exceeded = check_before_start(budget, usage, now)
    return _exceeded_event(exceeded, now) if exceeded is not None and exceeded.stops_run else None


def _exceeded_event(exceeded: Exceeded, now: datetime) -> ev.BudgetExceeded:
    return ev.BudgetExceeded(
        at=now,
        budget=exceeded.budget,
        limit=exceeded.limit,
        figure=exceeded.figure,
        message=exceeded.message,
    )


def _over_budget(state: RunState, now: datetime) -> ev.BudgetExceeded | None:
    """A budget already exceeded (tokens, cost, wall time) stops the run."""
    budget = state.workflow.budget
    if budget is None:
        return None
    exceeded = check(budget, _usage(state), now)
    if exceeded is None or not exceeded.stops_run:
        return None
    return _exceeded_event(exceeded, now)


def _capacity(state: RunState) -> int | None:
    limit = state.workflow.max_concurrency
    free = None if limit is None else max(limit - len(state.running), 0)
    budget = state.workflow.budget
    return free if budget is None else _budget_room(budget, state, free)


def _budget_room(budget: Budget, state: RunState, free: int | None) -> int | None:
    """Parallelism caps what runs at once; the step budget caps how many steps may ever start
    (a step beyond it stops the run, see `_starts`)."""
    if budget.parallelism is not None:
        room = max(budget.parallelism - len(state.running), 0)
        free = room if free is None else min(free, room)
    return free


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
    fresh = 0
    for step in _candidates(state, now, capacity):
        if step.id in state.losers:
            continue
        gate = _gate(state, step, now) or approvals.gate(state, step, now)
        if gate is not None:
            events.append(gate)
            continue
        if step.started_at is None:
            if (over := _step_budget(state, now, fresh)) is not None:
                events.append(over)
                break
            fresh += 1
        if loops.is_loop(step) and (over := _iteration_budget(state, now, events)) is not None:
            events.append(over)
            break
        attempt = step.attempts if step.requeued else step.attempts + 1
        events.append(
            ev.StepStarted(at=now, step_id=step.id, attempt=attempt, generation=step.generation)
        )
        if not loops.is_loop(step):  # a loop's start grows its body: nothing to launch
            start.append(step.id)
    return start


def _iteration_budget(
    state: RunState, now: datetime, events: list[ev.Event]
) -> ev.BudgetExceeded | None:
    """Would one more loop iteration, beyond those this decision already begins, break the
    `loop_iterations` budget?"""
    fresh = sum(
        isinstance(e, ev.LoopIterated)
        or (isinstance(e, ev.StepStarted) and loops.is_loop(state.steps[e.step_id]))
        for e in events
    )
    usage = replace(_usage(state), loop_iterations=state.loop_iterations + fresh)
    return loops.budget_stop(state, usage, now)


def _gate(state: RunState, step: StepState, now: datetime) -> ev.Event | None:
    """A `when` condition, checked before the first attempt: skip or fail instead of start."""
    condition = step.spec.when
    if condition is None or step.attempts > 0 or step.requeued:
        return None
    try:
        passed = truthy(evaluate(parse_condition(condition), state.template_context(step.id)))
    except ExpressionError as exc:
        return ev.StepFailed(
            at=now, step_id=step.id, attempt=0, error=f"when: {exc}", error_type="condition"
        )
    if passed:
        return None
    return ev.StepSkipped(at=now, step_id=step.id, reason="condition", message=f"when: {condition}")


def _settle(state: RunState, plan_id: str, ok: bool, result: Any, now: datetime) -> ev.Event:
    """A plan step whose children are done succeeds with their result, or fails."""
    if ok:
        return ev.StepSucceeded(at=now, step_id=plan_id, output=result)
    attempt = state.steps[plan_id].attempts
    return ev.StepFailed(at=now, step_id=plan_id, attempt=attempt, error=result, error_type="plan")


def _doom(state: RunState, step_id: str, reason: ev.SkipReason, now: datetime) -> ev.StepSkipped:
    step = state.steps[step_id]
    upstream = [n for n in step.spec.needs if _caused(state.steps[n], step, reason)]
    what = "failed or was cancelled" if reason == "upstream_failed" else "was skipped"
    message = f"a step it needs {what}: {', '.join(upstream)}"
    return ev.StepSkipped(at=now, step_id=step_id, reason=reason, message=message)


def _caused(need: StepState, step: StepState, reason: ev.SkipReason) -> bool:
    """Whether `need` counted against `step`'s join the way `reason` says (a need still pending,
    running or succeeded never did)."""
    if need.status is StepStatus.SKIPPED:
        failed_upstream = need.reason == "upstream_failed"
        if reason == "upstream_failed":
            return failed_upstream
        return not failed_upstream and not step.spec.allow_skipped
    if reason != "upstream_failed":
        return False
    if need.status is StepStatus.FAILED:
        return not need.spec.allow_failure
    return need.status is StepStatus.CANCELLED


def _stop(state: RunState, now: datetime) -> Decision:
    """Fail-fast or cancel: cancel what waits, cancel what runs, complete when nothing runs."""
    reason = stop_reason(state.stopping)
    waiting_on_child = {link.step_id for link in state.live_children}  # told to stop: wait
    events: list[ev.Event] = [
        ev.StepCancelled(at=now, step_id=s.id, reason=reason)
        for s in state.steps.values()
        if not s.terminal and s.status is not StepStatus.RUNNING and s.id not in waiting_on_child
    ]
    if not state.running and not waiting_on_child:
        events.append(_completion(state, now))
    return Decision(events=events, cancel=sorted(state.running))


def stop_reason(stopping: str | None) -> ev.CancelReason:
    """Why steps are cancelled while the run stops (or, when it does not, lost a race)."""
    if stopping == "cancel":
        return "run_cancelled"
    if stopping == "budget":
        return "budget"
    return "fail_fast" if stopping == "fail_fast" else "lost_race"


def _completion(state: RunState, now: datetime) -> ev.RunCompleted:
    if state.stopping == "cancel":
        return ev.RunCompleted(at=now, outcome="cancelled", error="cancelled on request")
    if state.stopping == "budget":
        return ev.RunCompleted(at=now, outcome="failed", error=state.budget_error)
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


def _unsafe_call_in_flight(step: StepState) -> bool:
    """An agent step that had started a tool call which may have side effects, and whose result
    was not recorded: running the step on would make that call a second time."""
    entries = step.transcript or ()
    done = {e["call_id"] for e in entries if e["kind"] == "tool"}
    return any(
        e["kind"] == "tool_started" and e["call_id"] not in done and not e["safe"] for e in entries
    )


def _may_run_again(step: StepState) -> bool:
    """Whether an in-flight attempt whose end nobody heard may simply run again."""
    return step.spec.is_idempotent and not _unsafe_call_in_flight(step)


def recover(state: RunState, now: datetime) -> ev.RunResumed:
    """On take-over: idempotent in-flight steps are requeued, the others are interrupted."""
    requeued: list[str] = []
    interrupted: list[str] = []
    for step_id in sorted(state.running, key=lambda s: state.steps[s].index):
        again = _may_run_again(state.steps[step_id])
        (requeued if again else interrupted).append(step_id)
    return ev.RunResumed(at=now, requeued=requeued, interrupted=interrupted)


def lost(state: RunState, step_id: str, attempt: int, error: str, now: datetime) -> ev.StepLost:
    """One running step whose attempt's process died: what `recover` does for it on take-over."""
    again = _may_run_again(state.steps[step_id])
    return ev.StepLost(at=now, step_id=step_id, attempt=attempt, error=error, requeued=again)
