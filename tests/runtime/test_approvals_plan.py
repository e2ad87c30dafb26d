"""A plan's confirmation is one case of the approval model: `approval.requested` for the plan
version, decided with `approval.granted|edited|rejected`; runs recorded before that, holding
`plan.generated` then `plan.approved`/`plan.rejected`, still fold the same way."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from podium.core import events as ev
from podium.core.approvals import pending
from podium.core.fold import replay
from podium.core.scheduler import decide
from podium.core.state import StepStatus
from podium.errors import InvalidTransitionError, UsageError
from podium.runtime.engine import Engine

from .test_plan_step import PLAN, Team, engine, flow, plan_step, team

__all__ = ["engine", "team"]  # the fixtures, used by name

AT = datetime(2026, 1, 1, tzinfo=UTC)


async def _kinds(engine: Engine, run_id: str) -> list[str]:
    return [e.event.kind for e in await engine.store.read(run_id)]


async def test_a_confirmed_plan_asks_and_is_granted_through_approval_events(
    engine: Engine, team: Team
) -> None:
    team.plans.append(PLAN)
    run_id = await engine.submit(flow(plan_step(confirm=True)))
    await engine.wait(run_id)
    [waiting] = await engine.approvals(run_id)
    assert (waiting.step_id, waiting.subject, waiting.version) == ("plan", "plan", 1)
    assert waiting.input == {"plan": PLAN}
    with pytest.raises(UsageError, match="awaits a plan"):
        await engine.approve(run_id, "plan", set=["task=x"])
    await engine.approve(run_id, "plan")
    state = await engine.wait(run_id)
    kinds = await _kinds(engine, run_id)
    assert state.status == "succeeded", state.completed_error
    assert kinds.count("approval.requested") == 1
    assert kinds.count("approval.granted") == 1
    assert "plan.approved" not in kinds


async def test_an_edited_plan_is_recorded_as_approval_edited(engine: Engine, team: Team) -> None:
    team.plans.append(PLAN)
    run_id = await engine.submit(flow(plan_step(confirm=True)))
    await engine.wait(run_id)
    edited = {"steps": [{"id": "only", "agent": "writer", "task": "just write"}]}
    await engine.approve(run_id, edit=edited)  # a plan step's edit is its edited plan
    state = await engine.wait(run_id)
    [edit] = [e.event for e in await engine.store.read(run_id) if e.event.kind == "approval.edited"]
    assert isinstance(edit, ev.ApprovalEdited)
    assert (edit.input, edit.version) == ({"plan": edited}, 2)
    assert set(state.steps) == {"plan", "plan.only"}


async def test_a_rejected_plan_is_recorded_as_approval_rejected(engine: Engine, team: Team) -> None:
    team.plans.append(PLAN)
    run_id = await engine.submit(flow(plan_step(confirm=True)))
    await engine.wait(run_id)
    await engine.reject(run_id, reason="too vague")
    state = await engine.wait(run_id)
    assert state.steps["plan"].error == "plan rejected: too vague"
    assert "approval.rejected" in await _kinds(engine, run_id)


async def test_a_plan_and_a_step_wait_at_once_each_addressed_by_its_step(
    engine: Engine, team: Team, tmp_path: Path
) -> None:
    team.plans.append(PLAN)
    held = {"id": "held", "kind": "shell", "run": "echo held", "approval": "required"}
    run_id = await engine.submit(flow(plan_step(confirm=True), held))
    await engine.wait(run_id)
    in_order = [("plan", "plan"), ("held", "step")]  # of one run: in workflow order
    assert [(w.step_id, w.subject) for w in await engine.approvals(run_id)] == in_order
    assert [(w.step_id, w.subject) for w in await engine.approvals()] == in_order[::-1]
    with pytest.raises(InvalidTransitionError, match="2 steps awaiting approval"):
        await engine.approve(run_id)
    with pytest.raises(UsageError, match="not a plan step"):
        await engine.approve(run_id, "held", plan=PLAN)
    await engine.approve(run_id, "held")
    parked = await engine.wait(run_id)
    assert parked.steps["held"].status is StepStatus.SUCCEEDED
    assert parked.status == "waiting"
    await engine.approve(run_id)  # the only one left
    assert (await engine.wait(run_id)).status == "succeeded"


def _old_log(*decision: ev.Event) -> list[ev.Event]:
    wf = flow(plan_step(confirm=True))
    return [
        ev.RunCreated(at=AT, run_id="old", workflow=wf, workspace="/tmp"),
        ev.StepStarted(at=AT, step_id="plan", attempt=1),
        ev.PlanGenerated(at=AT, step_id="plan", version=1, plan=PLAN),
        *decision,
    ]


def test_an_old_run_awaiting_its_plan_is_listed_and_asked_about_again() -> None:
    state = replay(_old_log())
    assert [(a.step_id, a.subject, a.version) for a in pending(state)] == [("plan", "plan", 1)]
    assert state.awaits_person
    [asked] = decide(state, AT).events
    assert isinstance(asked, ev.ApprovalRequested)
    assert (asked.step_id, asked.subject, asked.version) == ("plan", "plan", 1)


def test_old_plan_decisions_still_fold() -> None:
    approved = replay(_old_log(ev.PlanApproved(at=AT, step_id="plan", version=1)))
    assert {"plan.facts", "plan.note"} <= set(approved.steps)
    assert not pending(approved)
    rejected = replay(_old_log(ev.PlanRejected(at=AT, step_id="plan", version=1, reason="no")))
    assert rejected.steps["plan"].status is StepStatus.FAILED
    assert rejected.steps["plan"].error == "plan rejected: no"
