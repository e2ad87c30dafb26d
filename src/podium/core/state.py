"""The fold of a run's events into its state: `apply(state, event)` and `replay(events)`.

`apply` is deterministic and does no I/O. For speed it updates the state in place (a run of 10,000
steps must not be copied per event) and keeps incremental indexes the scheduler reads: the ready
heap, join counters, running set, parked retry timers.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from podium.core import events as ev
from podium.core.graph import Graph, build_graph
from podium.errors import RunError
from podium.spec.model import StepBase, Workflow


class StepStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    RETRYING = "retrying"
    INTERRUPTED = "interrupted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


TERMINAL = frozenset(
    {StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED}
)


@dataclass(slots=True, eq=False)
class StepState:
    spec: StepBase
    index: int
    rank: float
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    generation: int = 0
    requeued: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output: Any = None
    truncated: bool = False
    meta: dict[str, Any] | None = None
    error: str | None = None
    error_type: str | None = None
    retry_at: datetime | None = None
    reason: str | None = None
    ok: int = 0
    bad: int = 0
    skipped: int = 0

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass(slots=True, eq=False)
class RunState:
    run_id: str
    workflow: Workflow
    inputs: dict[str, Any]
    workspace: str
    workspace_path: Path
    created_at: datetime
    graph: Graph
    steps: dict[str, StepState]
    seq: int = 1
    updated_at: datetime | None = None
    ready: list[tuple[float, int, str]] = field(default_factory=list)
    running: set[str] = field(default_factory=set)
    retrying: dict[str, datetime] = field(default_factory=dict)
    doomed: dict[str, ev.SkipReason] = field(default_factory=dict)
    losers: set[str] = field(default_factory=set)
    unfinished: int = 0
    failures: list[str] = field(default_factory=list)
    stopping: str | None = None
    outcome: str | None = None
    completed_error: str | None = None

    @property
    def status(self) -> str:
        """pending | running | waiting | succeeded | failed | cancelled."""
        if self.outcome is not None:
            return self.outcome
        if self.running or self.ready or self.retrying or self.doomed or self.losers:
            return "running"
        if self.stopping is None and any(
            s.status is StepStatus.INTERRUPTED for s in self.steps.values()
        ):
            return "waiting"
        return "running" if self.seq > 1 else "pending"

    @property
    def interrupted(self) -> list[str]:
        return [s.id for s in self.steps.values() if s.status is StepStatus.INTERRUPTED]

    def template_context(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "steps": _StepsView(self.steps), "run": {"id": self.run_id}}


class _StepsView(Mapping[str, Any]):
    """`steps.<id>.output|status|error|attempts` for templates, built lazily per lookup."""

    __slots__ = ("_steps",)

    def __init__(self, steps: dict[str, StepState]) -> None:
        self._steps = steps

    def __getitem__(self, key: str) -> dict[str, Any]:
        s = self._steps[key]
        return {
            "output": s.output,
            "status": str(s.status),
            "error": s.error,
            "attempts": s.attempts,
        }

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)


def new_state(created: ev.RunCreated, workflow: Workflow | None = None) -> RunState:
    """The state right after `run.created`. Pass `workflow` to skip re-validating the document."""
    wf = workflow if workflow is not None else Workflow.model_validate(created.workflow)
    graph = build_graph(wf)
    steps = {
        step.id: StepState(spec=step, index=i, rank=graph.rank[step.id])
        for i, step in enumerate(wf.steps)
    }
    state = RunState(
        run_id=created.run_id,
        workflow=wf,
        inputs=dict(created.inputs),
        workspace=created.workspace,
        workspace_path=Path(created.workspace),
        created_at=created.at,
        graph=graph,
        steps=steps,
        updated_at=created.at,
        unfinished=len(steps),
    )
    for step in steps.values():
        if not step.spec.needs:
            _make_ready(state, step)
    return state


def replay(events: Iterable[ev.Event], workflow: Workflow | None = None) -> RunState:
    iterator = iter(events)
    first = next(iterator, None)
    if not isinstance(first, ev.RunCreated):
        raise ValueError("a run's event log must start with run.created")
    state = new_state(first, workflow)
    for event in iterator:
        apply(state, event)
    return state


def apply(state: RunState, event: ev.Event) -> RunState:
    """Fold one event into the state (in place) and return it."""
    handler = _HANDLERS.get(type(event))
    if handler is None:
        raise ValueError(f"event kind {event.kind} cannot be applied to a live run")
    handler(state, event)
    state.seq += 1
    state.updated_at = event.at
    return state


# ---------------------------------------------------------------------------------------- handlers


def _on_started(state: RunState, e: ev.StepStarted) -> None:
    step = state.steps[e.step_id]
    if step.status is StepStatus.RETRYING:
        state.retrying.pop(step.id, None)
    step.status = StepStatus.RUNNING
    step.attempts = e.attempt
    step.generation = e.generation
    step.requeued = False
    step.started_at = e.at
    step.finished_at = None
    state.running.add(step.id)
    _tidy_ready(state)


def _on_succeeded(state: RunState, e: ev.StepSucceeded) -> None:
    step = state.steps[e.step_id]
    step.output, step.truncated, step.meta = e.output, e.truncated, e.meta
    step.error = step.error_type = None
    _finish(state, step, StepStatus.SUCCEEDED, e.at)
    _propagate(state, step, "ok")


def _on_retrying(state: RunState, e: ev.StepRetrying) -> None:
    step = state.steps[e.step_id]
    state.running.discard(step.id)
    step.status = StepStatus.RETRYING
    step.error, step.error_type, step.retry_at = e.error, e.error_type, e.retry_at
    state.retrying[step.id] = e.retry_at


def _on_failed(state: RunState, e: ev.StepFailed) -> None:
    step = state.steps[e.step_id]
    step.error, step.error_type = e.error, e.error_type
    _finish(state, step, StepStatus.FAILED, e.at)
    if step.spec.allow_failure:
        _propagate(state, step, "ok")
        return
    state.failures.append(step.id)
    policy = step.spec.on_failure or state.workflow.on_failure
    if policy == "fail_fast" and state.stopping is None:
        state.stopping = "fail_fast"
    _propagate(state, step, "bad")


def _on_skipped(state: RunState, e: ev.StepSkipped) -> None:
    step = state.steps[e.step_id]
    was_failed = step.status is StepStatus.FAILED
    step.reason = e.reason
    step.error = e.message or step.error
    state.doomed.pop(step.id, None)
    _finish(state, step, StepStatus.SKIPPED, e.at)
    if was_failed:
        _reopen(state, step, skip=True)
    else:
        _propagate(state, step, "bad" if e.reason == "upstream_failed" else "skip")


def _on_cancelled(state: RunState, e: ev.StepCancelled) -> None:
    step = state.steps[e.step_id]
    step.reason = e.reason
    _finish(state, step, StepStatus.CANCELLED, e.at)
    _propagate(state, step, "bad")


def _on_resumed(state: RunState, e: ev.RunResumed) -> None:
    for step_id in e.requeued:
        step = state.steps[step_id]
        state.running.discard(step_id)
        step.requeued = True
        _make_ready(state, step)
    for step_id in e.interrupted:
        state.running.discard(step_id)
        state.steps[step_id].status = StepStatus.INTERRUPTED


def _on_cancel_requested(state: RunState, e: ev.RunCancelRequested) -> None:
    state.stopping = "cancel"


def _on_completed(state: RunState, e: ev.RunCompleted) -> None:
    state.outcome = e.outcome
    state.completed_error = e.error


def _on_retry_requested(state: RunState, e: ev.StepRetryRequested) -> None:
    step = state.steps[e.step_id]
    step.generation += 1
    step.attempts = 0
    step.requeued = False
    _reopen(state, step, skip=False)


_HANDLERS: dict[type, Callable[[RunState, Any], None]] = {
    ev.StepStarted: _on_started,
    ev.StepSucceeded: _on_succeeded,
    ev.StepRetrying: _on_retrying,
    ev.StepFailed: _on_failed,
    ev.StepSkipped: _on_skipped,
    ev.StepCancelled: _on_cancelled,
    ev.RunResumed: _on_resumed,
    ev.RunCancelRequested: _on_cancel_requested,
    ev.RunCompleted: _on_completed,
    ev.StepRetryRequested: _on_retry_requested,
}


# ------------------------------------------------------------------------------------- transitions


def _finish(state: RunState, step: StepState, status: StepStatus, at: datetime) -> None:
    was_terminal = step.terminal
    state.running.discard(step.id)
    state.retrying.pop(step.id, None)
    state.losers.discard(step.id)
    step.status = status
    step.finished_at = at
    step.retry_at = None
    if not was_terminal:
        state.unfinished -= 1
    _tidy_ready(state)


def _make_ready(state: RunState, step: StepState) -> None:
    step.status = StepStatus.READY
    heapq.heappush(state.ready, (-step.rank, step.index, step.id))


def _tidy_ready(state: RunState) -> None:
    """Drop heap entries at the top that are no longer ready (lazy deletion)."""
    ready, steps = state.ready, state.steps
    while ready and steps[ready[0][2]].status is not StepStatus.READY:
        heapq.heappop(ready)


def _propagate(state: RunState, step: StepState, result: str) -> None:
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
        _resolve_join(state, dep)


def _resolve_join(state: RunState, step: StepState) -> None:
    needed = state.graph.quorum[step.id]
    total = len(step.spec.needs)
    if step.ok >= needed:
        _make_ready(state, step)
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


def _reopen(state: RunState, step: StepState, *, skip: bool) -> None:
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
    state.failures = [
        s.id
        for s in state.steps.values()
        if s.status is StepStatus.FAILED and not s.spec.allow_failure
    ]
    state.stopping = state.outcome = state.completed_error = None
    _recount_joins(state)


def _reset(state: RunState, s: StepState) -> None:
    if s.terminal:
        state.unfinished += 1
    state.doomed.pop(s.id, None)
    state.running.discard(s.id)
    state.retrying.pop(s.id, None)
    s.status = StepStatus.PENDING
    s.reason = s.error = s.error_type = None
    s.retry_at = s.finished_at = None


def _recount_joins(state: RunState) -> None:
    """Recompute the join counters of every pending step from its needs' statuses."""
    for s in state.steps.values():
        if s.status is not StepStatus.PENDING:
            continue
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
            _resolve_join(state, s)
        else:
            _make_ready(state, s)


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


def require_step(state: RunState, step_id: str) -> StepState:
    from podium.errors import StepNotFoundError

    step = state.steps.get(step_id)
    if step is None:
        raise StepNotFoundError(state.run_id, step_id, list(state.steps))
    return step


__all__ = [
    "TERMINAL",
    "RunError",
    "RunState",
    "StepState",
    "StepStatus",
    "apply",
    "new_state",
    "replay",
    "require_step",
]
