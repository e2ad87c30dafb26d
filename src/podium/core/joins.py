"""Join bookkeeping: when a step resolves, its dependents count it as ok, bad or skipped and
become ready, doomed or losers; reopening a run (manual retry or skip) recounts every join."""

from __future__ import annotations

import heapq

from podium.core.state import RunState, StepState, StepStatus


def make_ready(state: RunState, step: StepState) -> None:
    step.status = StepStatus.READY
    heapq.heappush(state.ready, (-step.rank, step.index, step.id))


def tidy_ready(state: RunState) -> None:
    """Drop heap entries at the top that are no longer ready (lazy deletion)."""
    ready, steps = state.ready, state.steps
    while ready and steps[ready[0][2]].status is not StepStatus.READY:
        heapq.heappop(ready)


def propagate(state: RunState, step: StepState, result: str) -> None:
    """Tell each dependent that one of its needs resolved as ok, bad or skip."""
    for dep_id in state.graph.dependents[step.id]:
        dep = state.steps[dep_id]
        if dep.status is not StepStatus.PENDING:
            continue
        if result == "ok" or (result == "skip" and dep.spec.allow_skipped):
            dep.ok += 1
        elif result == "bad":
            dep.bad += 1
        else:
            dep.skipped += 1
        resolve_join(state, dep)


def resolve_join(state: RunState, step: StepState) -> None:
    needed = state.graph.quorum[step.id]
    total = len(step.spec.needs)
    if step.ok >= needed:
        make_ready(state, step)
        if needed < total:
            state.losers.update(_losing_siblings(state, step))
    elif step.ok + (total - step.ok - step.bad - step.skipped) < needed:
        state.doomed[step.id] = "upstream_failed" if step.bad else "upstream_skipped"


def _losing_siblings(state: RunState, winner: StepState) -> list[str]:
    """Needs of an any/quorum join still unfinished that no other step waits for."""
    losers = []
    for need_id in winner.spec.needs:
        need = state.steps[need_id]
        if need.terminal:
            continue
        waiting = [state.steps[d] for d in state.graph.dependents[need_id] if d != winner.id]
        if all(d.status is not StepStatus.PENDING for d in waiting):
            losers.append(need_id)
    return losers


def reopen(state: RunState, step: StepState, *, skip: bool) -> None:
    """Reopen a run at `step`: the step itself (unless it is being skipped), the failed, skipped
    and cancelled steps downstream of it, and every step stopped by fail-fast or a cancel go back
    to pending; join counters are recounted and the run is live again."""
    stopped = (StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED)
    to_reset = set() if skip else {step.id}
    seen: set[str] = set()
    stack = list(state.graph.dependents[step.id])
    while stack:
        sid = stack.pop()
        if sid in seen:
            continue
        seen.add(sid)
        if state.steps[sid].status in stopped:
            to_reset.add(sid)
        stack.extend(state.graph.dependents[sid])
    for s in state.steps.values():
        if s.status is StepStatus.CANCELLED and s.reason in ("fail_fast", "run_cancelled"):
            to_reset.add(s.id)
    for sid in to_reset:
        _reset(state, state.steps[sid])
    state.failures = [  # a plan's children's failures are the plan's, not the run's
        s.id
        for s in state.steps.values()
        if s.status is StepStatus.FAILED and not s.spec.allow_failure and s.parent is None
    ]
    state.stopping = state.outcome = state.completed_error = None
    recount_joins(state)


def _reset(state: RunState, s: StepState) -> None:
    if s.terminal:
        state.unfinished += 1
    state.doomed.pop(s.id, None)
    state.running.discard(s.id)
    state.retrying.pop(s.id, None)
    s.status = StepStatus.PENDING
    s.reason = s.error = s.error_type = None
    s.retry_at = s.finished_at = None


def recount_joins(state: RunState) -> None:
    """Recompute the join counters of every pending step from its needs' statuses."""
    for s in state.steps.values():
        if s.status is not StepStatus.PENDING:
            continue
        state.doomed.pop(s.id, None)  # doomed by an earlier count: this count decides again
        s.ok = s.bad = s.skipped = 0
        for need_id in s.spec.needs:
            need = state.steps[need_id]
            result = _need_result(need)
            if result == "ok" or (result == "skip" and s.spec.allow_skipped):
                s.ok += 1
            elif result == "bad":
                s.bad += 1
            elif result == "skip":
                s.skipped += 1
        if s.spec.needs:
            resolve_join(state, s)
        else:
            make_ready(state, s)


def _need_result(need: StepState) -> str | None:
    if need.status is StepStatus.SUCCEEDED:
        return "ok"
    if need.status is StepStatus.FAILED:
        return "ok" if need.spec.allow_failure else "bad"
    if need.status is StepStatus.SKIPPED:
        return "bad" if need.reason == "upstream_failed" else "skip"
    if need.status is StepStatus.CANCELLED:
        return "bad"
    return None
