"""Forking a run (time travel): a new run of the parent's recorded workflow that takes over the
parent's committed outputs of every step not downstream of the fork step, recorded as its
`run.forked`, and runs the fork step and everything after it anew."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from podium.clock import Clock
from podium.core import events as ev
from podium.core.fold import apply, new_state, replay
from podium.core.state import PlanState, RunState, StepState, StepStatus
from podium.errors import UsageError
from podium.ids import new_run_id
from podium.runtime.services import AgentServices
from podium.runtime.submission import check_agent_steps, hide_secrets
from podium.spec.expr import references
from podium.spec.model import LoopStep, StepBase, Workflow
from podium.spec.template import parse_condition, value_references
from podium.spec.validate import coerce_inputs
from podium.store.base import EventStore, Lease


async def start_fork(
    store: EventStore,
    parent_id: str,
    from_step: str,
    inputs: Mapping[str, Any] | None,
    services: AgentServices,
    clock: Clock,
    owner: str,
    ttl_seconds: float,
    memory: dict[str, str] | None = None,
) -> tuple[RunState, Lease]:
    """Check the request, create the fork leased to `owner` with its `run.forked` in the same
    commit (a fork is never seen, driven or resumed without it); return its state and the
    lease. Nothing is created on bad input. A new secret input's value goes to `memory`."""
    stored = await store.read(parent_id)
    parent = replay(s.event for s in stored)
    origin = stored[0].event
    assert isinstance(origin, ev.RunCreated)
    created, forked = fork_events(parent, origin, from_step, inputs, services, clock, memory)
    lease = await store.create_run(
        created,
        workflow_name=parent.workflow.name,
        lease_owner=owner,
        ttl_seconds=ttl_seconds,
        then=[forked],  # one commit: the fork never exists without what it reuses
    )
    assert lease is not None
    state = new_state(created, parent.workflow)
    apply(state, forked)
    return state, lease


def fork_events(
    parent: RunState,
    origin: ev.RunCreated,
    from_step: str,
    inputs: Mapping[str, Any] | None,
    services: AgentServices,
    clock: Clock,
    memory: dict[str, str] | None = None,
) -> tuple[ev.RunCreated, ev.RunForked]:
    """The fork's `run.created` (the parent's workflow, workspace, catalog, default model and
    configuration; the parent's inputs with `inputs` over them) and its `run.forked`."""
    step = _fork_step(parent, from_step)
    wf = parent.workflow
    values = hide_secrets(wf, coerce_inputs(wf, {**parent.inputs, **dict(inputs or {})}), memory)
    check_agent_steps(wf, services)
    now = clock.now()
    created = origin.model_copy(update={"run_id": new_run_id(), "at": now, "inputs": values})
    changed = {k for k, v in values.items() if k not in parent.inputs or parent.inputs[k] != v}
    reused, plans = _taken_over(parent, step, _readers(wf, changed))
    taken = sorted((sid for sid in reused if sid in parent.loops), key=lambda s: s.count("."))
    loops = {sid: len(parent.loops[sid].iterations) for sid in taken}  # outer loops first
    forked = ev.RunForked(
        at=now,
        parent_run_id=parent.run_id,
        from_step=step.id,
        reused=reused,
        plans=plans,
        loops=loops,
    )
    return created, forked


def _fork_step(parent: RunState, step_id: str) -> StepState:
    step = parent.steps.get(step_id)
    if step is None:
        close = difflib.get_close_matches(step_id, list(parent.steps), n=1)
        hint = f'; did you mean "{close[0]}"?' if close else "; `podium show RUN` lists its steps"
        raise UsageError(f"run {parent.run_id} has no step {step_id!r}{hint}")
    if step.parent is not None and step.parent in parent.loops:
        raise UsageError(
            f"step {step_id!r} is in an iteration of loop {step.parent!r}; fork from "
            f"{step.parent!r} (it runs again from iteration 1) or from a step after it"
        )
    if step.parent is not None and step_id not in parent.plans[step.parent].current:
        raise UsageError(
            f"step {step_id!r} belongs to a plan of {step.parent!r} that a later plan replaced; "
            f"fork from one of the current plan's steps or from {step.parent!r}"
        )
    return step


def _readers(wf: Workflow, changed: set[str]) -> set[str]:
    """The steps whose templates or `when` read one of the changed inputs."""
    if not changed:
        return set()
    return {s.id for s in wf.steps if _reads(s, changed)}


def _reads(step: StepBase, names: set[str]) -> bool:
    """Whether the step's templates or `when` read one of `names` (a loop: its `until` or any
    step of its body)."""
    refs = set().union(*(value_references(getattr(step, f)) for f in type(step).templated))
    for condition in (step.when, getattr(step, "until", None)):
        if condition is not None:
            refs |= references(parse_condition(condition))
    if isinstance(step, LoopStep) and any(_reads(body, names) for body in step.steps):
        return True
    return any(r[0] == "inputs" and (len(r) == 1 or r[1] in names) for r in refs)


def _taken_over(
    parent: RunState, step: StepState, readers: set[str]
) -> tuple[dict[str, ev.ReusedStep], dict[str, dict[str, Any]]]:
    """What the fork takes over: top-level steps that succeeded with nothing upstream to run
    again (with all their plan's children), and for a fork from a plan's child, that plan and
    its children not downstream of the child."""
    top = [s for s in parent.steps.values() if s.parent is None]
    seeds = {step.parent or step.id} | readers
    seeds |= {s.id for s in top if s.status is not StepStatus.SUCCEEDED}
    again = _downstream(parent, seeds)
    if step.parent is not None and step.parent in _downstream(parent, seeds - {step.parent}):
        raise UsageError(
            f"plan step {step.parent!r} runs again in this fork (a step or input it depends on "
            f"changes), so its plan is not reused; fork from {step.parent!r} instead"
        )
    reused: dict[str, ev.ReusedStep] = {}
    plans: dict[str, dict[str, Any]] = {}
    for sid in parent.graph.order:
        if sid == step.parent:
            plans[sid] = _plan_doc(parent, sid)
            reused |= _children(parent, parent.plans[sid], step.id)
        elif sid not in again:
            if sid in parent.plans:
                plans[sid] = _plan_doc(parent, sid)
                reused |= _children(parent, parent.plans[sid], None)
            if sid in parent.loops:  # its iterations, nested loops' too, in the order they ran
                inner = (s for s in parent.steps.values() if s.id.startswith(f"{sid}."))
                reused |= {s.id: _recorded(s) for s in inner}
            reused[sid] = _recorded(parent.steps[sid])
    return reused, plans


def _children(parent: RunState, record: PlanState, child: str | None) -> dict[str, ev.ReusedStep]:
    """A plan's children as recorded: all of them, or (forking from `child`) all but `child`,
    the current children downstream of it and those that did not succeed."""
    again: set[str] = set()
    if child is not None:
        failed = {c for c in record.current if parent.steps[c].status is not StepStatus.SUCCEEDED}
        again = _downstream(parent, {child} | failed)
    return {c: _recorded(parent.steps[c]) for c in record.children if c not in again}


def _downstream(parent: RunState, seeds: Iterable[str]) -> set[str]:
    """The seeds and every step that depends on one of them through `needs`, transitively."""
    found: set[str] = set()
    stack = list(seeds)
    while stack:
        sid = stack.pop()
        if sid not in found:
            found.add(sid)
            stack += parent.graph.dependents.get(sid, [])
    return found


def _plan_doc(parent: RunState, plan_id: str) -> dict[str, Any]:
    record = parent.plans[plan_id]
    return {
        "versions": record.versions,
        "children": [parent.steps[c].spec.model_dump(mode="json") for c in record.children],
        "current": record.current,
        "failures": record.failures,
        "replans": record.replans,
    }


def _recorded(step: StepState) -> ev.ReusedStep:
    status: Any = str(step.status)
    return ev.ReusedStep(
        status=status,
        output=step.output,
        truncated=step.truncated,
        meta=step.meta,
        error=step.error,
        error_type=step.error_type,
        reason=step.reason,
    )
