"""Loop steps in the fold and the scheduler: starting a loop grows iteration 1 of its body as
children `<loop>.<n>.<body id>` (through `core.subgraph`, like a plan's children); when an
iteration's children are all done the loop is due, and `decisions` evaluates `until` against
that iteration and records the next iteration (`loop.iterated`), the loop's success, or its
failure. Pure: no I/O; replaying the recorded events re-grows exactly the recorded iterations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from podium.core import events as ev
from podium.core import subgraph
from podium.core.budget import BudgetUsage, check_before_iteration
from podium.core.joins import tidy_ready
from podium.core.state import LoopState, RunState, StepState, StepStatus
from podium.spec.expr import ExpressionError, evaluate, truthy
from podium.spec.model import LoopStep
from podium.spec.template import parse_condition


def loop_of(step: StepState) -> LoopStep:
    assert isinstance(step.spec, LoopStep)
    return step.spec


def is_loop(step: StepState) -> bool:
    return isinstance(step.spec, LoopStep)


def child_id(loop_id: str, iteration: int, body_id: str) -> str:
    return f"{loop_id}.{iteration}.{body_id}"


def body_id(loop_id: str, child: str) -> str:
    """`draft` for `refine.2.draft` under `refine`."""
    return child[len(loop_id) + 1 :].split(".", 1)[1]


def iteration_of(loop_id: str, child: str) -> int:
    """2 for `refine.2.draft` under `refine`."""
    return int(child[len(loop_id) + 1 :].split(".", 1)[0])


# ------------------------------------------------------------------------------------------ fold


def started(state: RunState, step: StepState) -> None:
    """`step.started` of a loop step: it waits on iteration 1 of its body. A retried loop
    starts over: the children of its earlier generation leave the run's state."""
    state.running.discard(step.id)
    step.status = StepStatus.WAITING
    subgraph.remove_descendants(state, step.id)
    state.loops[step.id] = LoopState()
    grow(state, step, 1)


def iterated(state: RunState, e: ev.LoopIterated) -> None:
    """`loop.iterated`: the loop's next iteration joins the run."""
    step = state.steps[e.step_id]
    state.loops[step.id].due = False
    grow(state, step, e.iteration)


def grow(state: RunState, step: StepState, iteration: int) -> None:
    """Add iteration `iteration` of the loop's body: ids and needs namespaced, the loop's
    generation carried (so an idempotency key differs from an earlier generation's)."""
    record = state.loops[step.id]
    children: list[str] = []
    for body in loop_of(step).steps:
        spec = body.model_copy(
            update={
                "id": child_id(step.id, iteration, body.id),
                "needs": [child_id(step.id, iteration, n) for n in body.needs],
            }
        )
        child = subgraph.add_child(state, step, spec)
        child.generation = step.generation
        children.append(child.id)
    record.iterations.append(children)
    state.loop_iterations += 1


def restore(state: RunState, counts: dict[str, int]) -> None:
    """A fork takes over loops that finished in its parent: each (outer loops first) waits on
    its recorded iterations, re-grown from its body; the fork then takes over their children's
    results. Iterations taken over do not count toward the fork's `loop_iterations` budget."""
    spent = state.loop_iterations
    for loop_id, count in counts.items():
        step = state.steps[loop_id]
        step.status = StepStatus.WAITING
        state.loops[loop_id] = LoopState()
        for n in range(1, count + 1):
            grow(state, step, n)
    state.loop_iterations = spent
    tidy_ready(state)


def settled(state: RunState, step: StepState) -> None:
    """A step reached a terminal status: a loop step is no longer due; a loop's child may
    complete its iteration, which makes the loop due."""
    record = state.loops.get(step.id)
    if record is not None:
        record.due = False
    if step.parent is None or (record := state.loops.get(step.parent)) is None:
        return
    loop = state.steps[step.parent]
    if loop.status is not StepStatus.WAITING or step.id not in record.current:
        return
    if all(state.steps[c].terminal for c in record.current):
        record.due = True


def reopened(state: RunState, at: datetime) -> None:
    """After a retry or skip reopened the run: the children that a reopened (or skipped) loop
    left behind stay as they ended, cancelled, instead of running on their own; the loop, when
    it starts again, starts over at iteration 1."""
    for loop_id in list(state.loops):
        loop = state.steps.get(loop_id)
        if loop is None or loop.status is StepStatus.WAITING:
            continue
        for sid, child in state.steps.items():
            if sid.startswith(f"{loop_id}.") and not child.terminal:
                child.status = StepStatus.CANCELLED
                child.reason = "replaced"
                child.finished_at = at
                state.unfinished -= 1
                state.doomed.pop(sid, None)
                state.losers.discard(sid)
    tidy_ready(state)


# ------------------------------------------------------------------------------------- scheduler


def decisions(state: RunState, now: datetime, usage: BudgetUsage) -> list[ev.Event]:
    """For each due loop: its failure, its success, a budget stop, or its next iteration."""
    events: list[ev.Event] = []
    fresh = 0
    for loop_id, record in state.loops.items():
        if not record.due:
            continue
        event = _after_iteration(state, state.steps[loop_id], record, now)
        if isinstance(event, ev.LoopIterated):
            spent = BudgetUsage(
                started_at=usage.started_at, loop_iterations=usage.loop_iterations + fresh
            )
            over = budget_stop(state, spent, now)
            if over is not None:
                return [*events, over]
            fresh += 1
        events.append(event)
    return events


def budget_stop(state: RunState, usage: BudgetUsage, now: datetime) -> ev.BudgetExceeded | None:
    """The `loop_iterations` budget, were one more iteration to start."""
    budget = state.workflow.budget
    exceeded = check_before_iteration(budget, usage) if budget is not None else None
    if exceeded is None:
        return None
    return ev.BudgetExceeded(
        at=now,
        budget=exceeded.budget,
        limit=exceeded.limit,
        figure=exceeded.figure,
        message=exceeded.message,
    )


def _after_iteration(
    state: RunState, loop: StepState, record: LoopState, now: datetime
) -> ev.Event:
    spec = loop_of(loop)
    iteration = len(record.iterations)
    problem = _problem(state, loop.id, record.current)
    if problem is not None:
        return _failed(loop, f"iteration {iteration}: {problem}", "loop", now)
    if spec.until is not None:
        try:
            context = state.loop_context(loop.id, iteration)
            done = truthy(evaluate(parse_condition(spec.until), context))
        except ExpressionError as exc:
            return _failed(loop, f"iteration {iteration}: until: {exc}", "condition", now)
        if done:
            return _succeeded(state, loop, record, "until", now)
    if iteration >= spec.bound:
        return _succeeded(state, loop, record, "max_iterations", now)
    return ev.LoopIterated(at=now, step_id=loop.id, iteration=iteration + 1)


def _problem(state: RunState, loop_id: str, children: list[str]) -> str | None:
    """The first body step that failed (not `allow_failure`) or was cancelled, by body id."""
    for sid in children:
        child = state.steps[sid]
        name = body_id(loop_id, sid)
        if child.status is StepStatus.FAILED and not child.spec.allow_failure:
            return f"step {name} failed: {child.error or 'failed'}"
        if child.status is StepStatus.CANCELLED and child.reason != "lost_race":
            return f"step {name} was cancelled ({child.reason or 'cancelled'})"
    return None


def _failed(loop: StepState, error: str, error_type: str, now: datetime) -> ev.StepFailed:
    return ev.StepFailed(
        at=now, step_id=loop.id, attempt=loop.attempts, error=error, error_type=error_type
    )


def _succeeded(
    state: RunState, loop: StepState, record: LoopState, why: str, now: datetime
) -> ev.StepSucceeded:
    """The last iteration's outputs by body id; the meta says how many and why it stopped."""
    output = {body_id(loop.id, c): state.steps[c].output for c in record.current}
    meta: dict[str, Any] = {"iterations": len(record.iterations), "stopped": why}
    return ev.StepSucceeded(at=now, step_id=loop.id, output=output, meta=meta)


def iterations(state: RunState, loop_id: str) -> list[dict[str, StepState]]:
    """Each iteration's children by body id (this generation's), for views."""
    record = state.loops.get(loop_id)
    if record is None:
        return []
    return [{body_id(loop_id, c): state.steps[c] for c in cs} for cs in record.iterations]


# ----------------------------------------------------------------------------------------- views


def summary(state: RunState) -> dict[str, dict[str, Any]]:
    """Each started loop's iterations (child ids, this generation's) and, once it succeeded,
    why it stopped (`until` or `max_iterations`)."""
    found: dict[str, dict[str, Any]] = {}
    for loop_id, record in state.loops.items():
        meta = state.steps[loop_id].meta or {}
        found[loop_id] = {
            "iterations": [list(children) for children in record.iterations],
            "stopped": meta.get("stopped"),
        }
    return found


def iteration(state: RunState, step: StepState) -> int | None:
    """The iteration a loop's child belongs to; None for other steps."""
    if step.parent is None or step.parent not in state.loops:
        return None
    return iteration_of(step.parent, step.id)


def group(state: RunState, step: StepState) -> str | None:
    """What a picture groups a step under: its iteration (`refine.2`) for a loop's child, its
    plan step for a plan's child."""
    n = iteration(state, step)
    return step.parent if n is None or step.parent is None else f"{step.parent}.{n}"


def display_order(state: RunState) -> list[tuple[StepState, int]]:
    """The run's steps for people, each with its depth: a loop's children follow the loop,
    iteration by iteration (nested loops likewise); the others keep the run's order."""
    under: dict[str, list[StepState]] = {}
    for step in state.steps.values():
        if step.parent is not None and step.parent in state.loops:
            under.setdefault(step.parent, []).append(step)
    inside = {child.id for children in under.values() for child in children}
    shown: list[tuple[StepState, int]] = []
    stack = [(step, 0) for step in reversed(state.steps.values()) if step.id not in inside]
    while stack:
        step, depth = stack.pop()
        shown.append((step, depth))
        stack += [(child, depth + 1) for child in reversed(under.get(step.id, []))]
    return shown


def ending(step: StepState) -> str | None:
    """`3 iterations, until held` for a loop step that succeeded; None for other steps."""
    if not is_loop(step) or not step.meta:
        return None
    count = step.meta.get("iterations", 0)
    why = "until held" if step.meta.get("stopped") == "until" else "max_iterations reached"
    return f"{count} iteration{'s' if count != 1 else ''}, {why}"


def closed_loop(state: RunState, step: StepState) -> str | None:
    """The loop a step is a child of, when that loop no longer waits on it (it succeeded,
    failed or was cancelled): retrying or skipping the child alone would change nothing."""
    if step.parent is None or step.parent not in state.loops:
        return None
    loop = state.steps[step.parent]
    return None if loop.status is StepStatus.WAITING else loop.id
