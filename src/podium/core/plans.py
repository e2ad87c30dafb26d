"""Plan steps in the fold: adopting a plan grows the run's graph with namespaced child steps;
a child's failure triggers a replan (while replans are left) or fails the plan step; when the
current children are done the plan step settles (the scheduler records its result)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from podium.core import subgraph
from podium.core.joins import make_ready, recount_joins
from podium.core.state import PlanState, RunState, StepState, StepStatus
from podium.spec.model import STEP_TYPES, PlanStep, StepBase
from podium.spec.plan import AGGREGATE, VERIFY, children


def plan_of(state: RunState, step: StepState) -> PlanStep:
    assert isinstance(step.spec, PlanStep)
    return step.spec


def short_id(plan_id: str, child_id: str) -> str:
    return child_id[len(plan_id) + 1 :]


def generated(state: RunState, step: StepState, plan: dict[str, Any], at: datetime) -> None:
    """A new plan version: park it for approval, or adopt it at once."""
    record = state.plans.setdefault(step.id, PlanState())
    record.versions.append(plan)
    state.running.discard(step.id)
    step.status = StepStatus.WAITING
    if plan_of(state, step).confirm:
        record.awaiting = True
    else:
        adopt(state, step, plan, at)


def adopt(state: RunState, step: StepState, plan: dict[str, Any], at: datetime) -> None:
    """Add the plan's children to the run; in `replace` mode drop the pending ones of the plan
    it replaces (running and finished children are kept)."""
    spec = plan_of(state, step)
    record = state.plans[step.id]
    record.awaiting = False
    step.status = StepStatus.WAITING
    kept = [c for c in record.current if not state.steps[c].terminal]
    if spec.replan == "replace":
        kept = [c for c in kept if not _replace(state, state.steps[c], at)]
    taken = [short_id(step.id, c) for c in record.children]
    new = children(plan, spec, taken)
    for child in new:
        add_child(state, step, child)
    record.children += [c.id for c in new]
    record.current = kept + [c.id for c in new]
    recount_joins(state)


def _replace(state: RunState, child: StepState, at: datetime) -> bool:
    if child.status not in (StepStatus.PENDING, StepStatus.READY):
        return False
    child.status = StepStatus.CANCELLED
    child.reason = "replaced"
    child.finished_at = at
    state.unfinished -= 1
    state.doomed.pop(child.id, None)
    return True


def add_child(state: RunState, parent: StepState, spec: StepBase) -> None:
    """A child step of any kind joins the run's graph, `parent` set (which marks it as
    planner-generated for the approval policy)."""
    subgraph.add_child(state, parent, spec)


def child_settled(state: RunState, child: StepState) -> None:
    """A child reached a terminal status: replan, fail or settle its plan step as due."""
    assert child.parent is not None
    parent = state.steps[child.parent]
    record = state.plans.get(parent.id)
    if record is None or child.id not in record.current or parent.status is not StepStatus.WAITING:
        return
    problem = _problem(child)
    if problem is not None:
        record.failures[child.id] = problem
        _replan_or_fail(state, parent, record.replans, problem)
        return
    if all(state.steps[c].terminal for c in record.current):
        state.settled_plans[parent.id] = (True, _output(state, parent))


def _problem(child: StepState) -> str | None:
    if child.status is StepStatus.FAILED and not child.spec.allow_failure:
        return child.error or "failed"
    if child.status is StepStatus.SKIPPED and child.reason == "upstream_failed":
        return None  # its upstream failure already counted
    if child.status is StepStatus.CANCELLED and child.reason in ("replaced", "lost_race"):
        return None
    if child.status is StepStatus.CANCELLED:
        return "cancelled"
    verdict = child.output if child.id.endswith(f".{VERIFY}") else None
    if isinstance(verdict, dict) and verdict.get("verdict") == "fail":
        reasons = "; ".join(str(r) for r in verdict.get("reasons") or []) or "no reason given"
        return f"the verifier failed the result: {reasons}"
    return None


def _replan_or_fail(state: RunState, parent: StepState, replans: int, problem: str) -> None:
    if state.stopping is not None:
        return
    record = state.plans[parent.id]
    if replans < plan_of(state, parent).max_replans:
        record.replans += 1
        make_ready(state, parent)
        return
    message = f"plan failed after {replans} replans: {problem}"
    state.settled_plans[parent.id] = (False, message)


def _output(state: RunState, parent: StepState) -> Any:
    """The aggregator's answer when there is one, else every successful child's output."""
    record = state.plans[parent.id]
    aggregate = f"{parent.id}.{AGGREGATE}"
    if aggregate in record.current:
        return state.steps[aggregate].output
    return {
        short_id(parent.id, c): state.steps[c].output
        for c in record.children
        if state.steps[c].status is StepStatus.SUCCEEDED and not c.endswith(f".{VERIFY}")
    }


def history(state: RunState, step: StepState) -> dict[str, Any]:
    """What a (re)planning supervisor is told: earlier plans, failures, completed outputs, and
    the agents the run's policy blocks (its plan may not name them)."""
    record = state.plans.get(step.id)
    names = list(state.policy.block_agents)
    blocked = {"blocked_agents": names} if names else {}
    if record is None:
        return blocked
    done = {
        short_id(step.id, c): state.steps[c].output
        for c in record.children
        if state.steps[c].status is StepStatus.SUCCEEDED
    }
    return {
        "versions": record.versions,
        "failures": {short_id(step.id, c): e for c, e in record.failures.items()},
        "completed": done,
        "taken": [short_id(step.id, c) for c in record.children],
        **blocked,
    }


def child_spec(doc: dict[str, Any]) -> StepBase:
    """A recorded child step (a fork's copy of its parent's plan children), of its kind."""
    return STEP_TYPES[str(doc.get("kind", "agent"))].model_validate(doc)
