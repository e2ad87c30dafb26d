"""`workflow` steps in the core: a step that would start records `child.started` instead of
launching an attempt, and waits; the child's end (`ChildEnded`, from the child's signal or read
from the store) becomes `child.completed` — its spending counts toward this run's budgets — and
then the step's own success, failure or cancellation. Pure: the runtime creates and drives the
child run (runtime/children.py).

Budgets are pooled across the run tree: a child starts with what its parent's limits leave (the
parent's usage so far subtracted), capped by the step's own `budget`; `depth` binds: a run's
steps are at its depth, a plan's children and a workflow step's child one deeper."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from typing import Any

from podium.core import events as ev
from podium.core.happenings import ChildEnded, ControlSignal
from podium.core.outputs import cap_output
from podium.core.state import ChildLink, RunState, StepState, StepStatus
from podium.spec.model import Budget, PlanStep, StepBase, WorkflowStep
from podium.spec.subworkflows import MAX_NESTING

RUN_ID_LIMIT = 128
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_BUDGET_NAME = re.compile(r"^budget (\w+) exceeded")
OUTCOMES = frozenset({"succeeded", "failed", "cancelled"})


def child_run_id(run_id: str, step_id: str, generation: int) -> str:
    """The child run's id: the same for the same run, step and generation, so the run that a
    crash left uncreated is created under the id its parent recorded, once."""
    plain = f"{run_id}.{step_id}.{generation}"
    if len(plain) <= RUN_ID_LIMIT and _SAFE_ID.match(plain):
        return plain
    digest = hashlib.blake2b(plain.encode(), digest_size=6).hexdigest()
    return f"{run_id[: RUN_ID_LIMIT - 14]}.c{digest}"


# ----------------------------------------------------------------------------------- starting


def depth_problem(state: RunState, spec: StepBase) -> str | None:
    """A plan or workflow step whose children would be deeper than `budget.depth` allows."""
    if not isinstance(spec, PlanStep | WorkflowStep):
        return None
    what = "plan's children" if isinstance(spec, PlanStep) else "child run"
    if state.depth + 1 > MAX_NESTING:  # planned workflow steps are not followed at validation
        return f"run trees nest at most {MAX_NESTING} deep: its {what} would be deeper"
    budget = state.workflow.budget
    limit = budget.depth if budget is not None else None
    if limit is None or state.depth + 1 <= limit:
        return None
    return (
        f"budget depth exceeded: its {what} would be at depth {state.depth + 1} of {limit} "
        "(raise budget.depth to nest deeper)"
    )


def start(state: RunState, step: StepState, rendered: WorkflowStep, now: datetime) -> ev.Event:
    """`child.started` for a workflow step whose templates rendered: the child's id and inputs,
    and the budget the pool leaves it."""
    return ev.ChildStarted(
        at=now,
        step_id=step.id,
        child_run_id=child_run_id(state.run_id, step.id, step.generation),
        generation=step.generation,
        workflow=rendered.workflow,
        inputs=dict(rendered.inputs),
        budget=pooled_budget(state, rendered.budget, now),
    )


def pooled_budget(state: RunState, own: Budget | None, now: datetime) -> dict[str, Any]:
    """What the run tree's limits leave for a child started now, capped by its step's own
    `budget`. A limit already reached leaves the smallest allowance (1 token or step), so the
    child stops at its first use and the parent's own check names the limit."""
    pool = state.workflow.budget
    remaining: dict[str, Any] = {}
    if pool is not None:
        if pool.tokens is not None:
            remaining["tokens"] = max(pool.tokens - state.tokens, 1)
        if pool.cost_usd is not None:
            remaining["cost_usd"] = max(pool.cost_usd - state.cost_usd, 1e-9)
        if pool.steps is not None:
            remaining["steps"] = max(pool.steps - state.steps_started, 1)
        if pool.loop_iterations is not None:
            remaining["loop_iterations"] = max(pool.loop_iterations - state.loop_iterations, 1)
        if pool.wall_seconds is not None:
            left = (state.created_at + timedelta(seconds=pool.wall_seconds) - now).total_seconds()
            remaining["wall_seconds"] = max(left, 0.001)
        for name in ("depth", "parallelism"):
            if getattr(pool, name) is not None:
                remaining[name] = getattr(pool, name)
    return merge_budgets(remaining, own)


def merge_budgets(first: dict[str, Any], second: Budget | None) -> dict[str, Any]:
    """The tighter of two budgets, field by field (a field either leaves unset is the other's)."""
    merged = dict(first)
    if second is None:
        return merged
    for name, value in second.model_dump(exclude_none=True).items():
        merged[name] = min(merged[name], value) if name in merged else value
    return merged


def started(state: RunState, e: ev.ChildStarted) -> None:
    """Fold `child.started`: the step waits for its child; nothing of it runs here."""
    step = state.steps[e.step_id]
    state.running.discard(step.id)
    step.status = StepStatus.WAITING
    link = ChildLink(
        run_id=e.child_run_id,
        step_id=step.id,
        generation=e.generation,
        workflow=e.workflow,
        inputs=dict(e.inputs),
        budget=dict(e.budget),
    )
    state.children.setdefault(step.id, []).append(link)


# ------------------------------------------------------------------------------------- ending


def completed(state: RunState, e: ev.ChildCompleted) -> None:
    """Fold `child.completed`: the link records the child's end; its spending is the tree's."""
    for link in state.children.get(e.step_id, ()):
        if link.run_id == e.child_run_id:
            link.status, link.error = e.outcome, e.error
    step = state.steps[e.step_id]
    step.tokens += e.tokens
    step.cost_usd += e.cost_usd
    state.tokens += e.tokens
    state.cost_usd += e.cost_usd
    state.steps_started += e.steps
    state.loop_iterations += e.loop_iterations


def waiting_link(state: RunState, step_id: str, child_run_id: str) -> ChildLink | None:
    """The live link of a step that still waits for this child, or None (stale, or told)."""
    step = state.steps.get(step_id)
    if step is None or step.status is not StepStatus.WAITING:
        return None
    for link in state.children.get(step_id, ()):
        if link.run_id == child_run_id and link.live:
            return link
    return None


def ended_events(state: RunState, ended: ChildEnded, now: datetime) -> list[ev.Event]:
    """`child.completed`, a `budget.exceeded` when the child's spending (or the child's own
    budget, which is the pool's) stopped the tree, then the step's end. Nothing when the step
    no longer waits for that child: the parent learns each child's end once."""
    if waiting_link(state, ended.step_id, ended.child_run_id) is None:
        return []
    events: list[ev.Event] = [
        ev.ChildCompleted(
            at=now,
            step_id=ended.step_id,
            child_run_id=ended.child_run_id,
            outcome=ended.outcome,
            error=ended.error,
            budget=ended.budget,
            tokens=ended.tokens,
            cost_usd=ended.cost_usd,
            steps=ended.steps,
            loop_iterations=ended.loop_iterations,
        )
    ]
    if state.stopping is None and (over := _pool_exceeded(state, ended, now)) is not None:
        events.append(over)
    events.append(_step_end(state, ended, now, stopping=state.stopping or _stops(events)))
    return events


def _stops(events: list[ev.Event]) -> str | None:
    return "budget" if any(isinstance(e, ev.BudgetExceeded) for e in events) else None


def _step_end(state: RunState, ended: ChildEnded, now: datetime, stopping: str | None) -> ev.Event:
    step = state.steps[ended.step_id]
    who = f"child run {ended.child_run_id}"
    if ended.outcome == "succeeded":
        output, truncated = cap_output(ended.output, state.workflow.output_limit_bytes)
        return ev.StepSucceeded(at=now, step_id=step.id, output=output, truncated=truncated)
    if ended.outcome == "cancelled" and stopping is not None:
        reason: ev.CancelReason = "budget" if stopping == "budget" else "run_cancelled"
        if stopping == "fail_fast":
            reason = "fail_fast"
        return ev.StepCancelled(at=now, step_id=step.id, reason=reason)
    if ended.outcome == "cancelled":
        error, error_type = f"{who} was cancelled", "cancelled"
    else:
        error = f"{who} failed: {ended.error or 'no error recorded'}"
        error_type = "budget" if ended.budget else "child"
    attempt = max(step.attempts, 1)
    return ev.StepFailed(
        at=now, step_id=step.id, attempt=attempt, error=error, error_type=error_type
    )


def _pool_exceeded(state: RunState, ended: ChildEnded, now: datetime) -> ev.BudgetExceeded | None:
    """The tree's budget, with the child's spending counted, or the child's own stop (its
    budget was the pool's remainder), as this run's `budget.exceeded`."""
    pool = state.workflow.budget
    if pool is None:
        return None
    figures = (
        ("tokens", state.tokens + ended.tokens),
        ("cost_usd", state.cost_usd + ended.cost_usd),
        ("steps", state.steps_started + ended.steps),
        ("loop_iterations", state.loop_iterations + ended.loop_iterations),
    )
    for name, figure in figures:
        limit = getattr(pool, name)
        if limit is not None and figure > limit:
            message = f"budget {name} exceeded: {figure:g} of {limit:g} (with child run "
            message += f"{ended.child_run_id})"
            return ev.BudgetExceeded(
                at=now, budget=name, limit=limit, figure=figure, message=message
            )
    stopped_by = ended.budget
    limit = getattr(pool, stopped_by, None) if stopped_by is not None else None
    if stopped_by is None or not isinstance(limit, int | float):
        return None  # the child's own, tighter budget stopped it: the step fails, not the tree
    figure = dict(figures).get(stopped_by, limit)
    message = f"budget {stopped_by} exceeded in child run {ended.child_run_id}: {ended.error}"
    return ev.BudgetExceeded(at=now, budget=stopped_by, limit=limit, figure=figure, message=message)


def signal_events(state: RunState, signal: ControlSignal, now: datetime) -> list[ev.Event]:
    """A `child` signal (posted by the child's driver after its end was committed) as the
    events of its end; `signal.refused` when it is malformed or the step no longer waits."""
    payload = signal.payload
    fields = {k: payload.get(k) for k in ("step_id", "child_run_id", "outcome")}
    if not all(isinstance(v, str) for v in fields.values()) or fields["outcome"] not in OUTCOMES:
        return [_refused(signal, "a child signal needs step_id, child_run_id and an outcome", now)]
    ended = ended_from(payload)
    produced = ended_events(state, ended, now)
    if produced or _told(state, ended):
        return produced  # already recorded (read from the store first): consumed, silently
    reason = f"step {ended.step_id} no longer waits for child run {ended.child_run_id}"
    return [_refused(signal, reason, now)]


def _told(state: RunState, ended: ChildEnded) -> bool:
    links = state.children.get(ended.step_id, ())
    return any(link.run_id == ended.child_run_id and not link.live for link in links)


def ended_from(payload: Any) -> ChildEnded:
    """A `ChildEnded` from a child signal's payload (checked by the caller)."""
    return ChildEnded(
        step_id=str(payload["step_id"]),
        child_run_id=str(payload["child_run_id"]),
        outcome=str(payload["outcome"]),
        output=payload.get("output"),
        error=_text(payload.get("error")),
        budget=_text(payload.get("budget")),
        tokens=_number(payload.get("tokens"), int),
        cost_usd=_number(payload.get("cost_usd"), float),
        steps=_number(payload.get("steps"), int),
        loop_iterations=_number(payload.get("loop_iterations"), int),
    )


def ended_of(child: RunState) -> ChildEnded | None:
    """How a finished child ended, for its parent; None while it has not, or has no parent."""
    if child.outcome is None or child.parent is None:
        return None
    outputs = {
        s.id: s.output
        for s in child.steps.values()
        if s.parent is None and s.status is StepStatus.SUCCEEDED
    }
    budget = None
    if child.stopping == "budget" and child.budget_error:
        found = _BUDGET_NAME.match(child.budget_error)
        budget = found.group(1) if found else None
    return ChildEnded(
        step_id=child.parent["step_id"],
        child_run_id=child.run_id,
        outcome=child.outcome,
        output=outputs if child.outcome == "succeeded" else None,
        error=child.completed_error,
        budget=budget,
        tokens=child.tokens,
        cost_usd=child.cost_usd,
        steps=child.steps_started,
        loop_iterations=child.loop_iterations,
    )


def children_document(state: RunState) -> dict[str, list[dict[str, Any]]]:
    """The run's child runs by workflow step, oldest first: id, generation, status, error."""
    return {
        step_id: [
            {
                "run_id": link.run_id,
                "generation": link.generation,
                "status": link.status,
                "error": link.error,
            }
            for link in links
        ]
        for step_id, links in state.children.items()
    }


def _refused(signal: ControlSignal, reason: str, now: datetime) -> ev.SignalRefused:
    step_id = signal.payload.get("step_id")
    return ev.SignalRefused(
        at=now,
        signal_id=signal.id,
        signal=signal.kind,
        step_id=step_id if isinstance(step_id, str) else None,
        reason=reason,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any, kind: type[int] | type[float]) -> Any:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    return kind(value) if ok else kind(0)


__all__ = [
    "child_run_id",
    "children_document",
    "completed",
    "depth_problem",
    "ended_events",
    "ended_of",
    "merge_budgets",
    "pooled_budget",
    "signal_events",
    "start",
    "started",
    "waiting_link",
]
