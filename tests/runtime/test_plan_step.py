"""The plan step end to end: a supervisor plans, the plan is checked and repaired, children run
through the scheduler, failures trigger replans that keep completed work, confirmation parks the
run until a person approves (or edits, or rejects) the plan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from podium.core.state import StepStatus
from podium.errors import SpecError
from podium.llm.base import ModelRequest
from podium.runtime.engine import Engine
from podium.testing import FunctionModel, register_function_model, unregister_function_model

AGENT = "---\nname: {name}\ndescription: {description}\nmodel: function:{model}\n---\n{body}\n"


class Team:
    """A planner that answers from a queue and workers that answer from a function."""

    def __init__(self) -> None:
        self.plans: list[Any] = []
        self.planner_prompts: list[str] = []
        self.worker_calls: list[str] = []
        self.fail_tasks: set[str] = set()

    def planner(self, request: ModelRequest) -> Any:
        self.planner_prompts.append(request.messages[-1].content)
        return self.plans.pop(0)

    def worker(self, request: ModelRequest) -> Any:
        task = request.messages[1].content.split("\n")[0]
        self.worker_calls.append(task)
        if task in self.fail_tasks:
            from podium.errors import ModelError

            raise ModelError("bad request", retryable=False, provider="function", status=400)
        return f"done: {task}"


@pytest.fixture
def team(tmp_path: Path) -> Iterator[Team]:
    team = Team()
    register_function_model("planner-m", FunctionModel(team.planner, name="function:planner-m"))
    register_function_model("worker-m", FunctionModel(team.worker, name="function:worker-m"))
    agents = tmp_path / "agents"
    agents.mkdir()
    for name, model, description in [
        ("planner", "planner-m", "Plans work."),
        ("researcher", "worker-m", "Finds facts."),
        ("writer", "worker-m", "Writes prose."),
    ]:
        body = f"You are the {name}."
        text = AGENT.format(name=name, description=description, model=model, body=body)
        (agents / f"{name}.md").write_text(text)
    yield team
    unregister_function_model("planner-m")
    unregister_function_model("worker-m")


@pytest.fixture
async def engine(tmp_path: Path, team: Team) -> AsyncIterator[Engine]:
    async with await Engine.open(tmp_path / "p.db", workspace=tmp_path) as eng:
        yield eng


def plan_step(**fields: Any) -> dict[str, Any]:
    return {"id": "plan", "kind": "plan", "goal": "Write a note about launches", **fields}


def flow(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"name": "planned", "steps": list(steps)}


PLAN = {
    "summary": "research then write",
    "steps": [
        {"id": "facts", "agent": "researcher", "task": "find facts"},
        {"id": "note", "agent": "writer", "task": "write note", "needs": ["facts"]},
    ],
}


async def test_a_plan_expands_into_children_that_run(engine: Engine, team: Team) -> None:
    team.plans.append(PLAN)
    after = {"id": "after", "kind": "shell", "run": "echo after", "needs": ["plan"]}
    state = await engine.run(flow(plan_step(), after))
    assert state.status == "succeeded", state.completed_error
    assert state.steps["plan.facts"].output == "done: find facts"
    assert state.steps["plan.note"].spec.needs == ["plan.facts"]
    assert state.steps["plan"].output == {"facts": "done: find facts", "note": "done: write note"}
    assert state.steps["after"].status is StepStatus.SUCCEEDED
    assert len(team.planner_prompts) == 1
    assert "- researcher: Finds facts." in team.planner_prompts[0]
    kinds = [e.event.kind for e in await engine.store.read(state.run_id)]
    assert kinds.count("plan.generated") == 1


async def test_an_invalid_plan_is_sent_back_with_its_problems(engine: Engine, team: Team) -> None:
    bad = {"steps": [{"id": "x", "agent": "poet", "task": "t", "needs": ["nope"]}]}
    team.plans += [bad, PLAN]
    state = await engine.run(flow(plan_step()))
    assert state.status == "succeeded", state.completed_error
    assert len(team.planner_prompts) == 2
    repair = team.planner_prompts[1]
    assert 'steps[0].needs[0]: unknown step "nope"' in repair
    assert "steps[0].agent" in repair


async def test_planner_that_never_plans_well_fails_the_step(engine: Engine, team: Team) -> None:
    bad = {"steps": [{"id": "x", "agent": "poet", "task": "t"}]}
    team.plans += [bad, bad]
    state = await engine.run(flow(plan_step(max_plan_attempts=2)))
    assert state.status == "failed"
    assert "gave no valid plan in 2 attempts" in (state.steps["plan"].error or "")


async def test_a_failed_child_triggers_a_replan_that_keeps_completed_work(
    engine: Engine, team: Team
) -> None:
    team.fail_tasks.add("write note")
    replan = {
        "steps": [{"id": "note2", "agent": "writer", "task": "write it again", "needs": ["facts"]}]
    }
    team.plans += [PLAN, replan]
    state = await engine.run(flow(plan_step()))
    assert state.status == "succeeded", state.completed_error
    assert team.worker_calls.count("find facts") == 1  # completed work is kept, not redone
    assert state.steps["plan.note"].status is StepStatus.FAILED
    assert state.steps["plan.note2"].output == "done: write it again"
    assert "Failures:\n- note:" in team.planner_prompts[1]
    assert "- facts: done: find facts" in team.planner_prompts[1]
    generated = [
        e.event for e in await engine.store.read(state.run_id) if e.event.kind == "plan.generated"
    ]
    assert [g.version for g in generated] == [1, 2]


async def test_replans_are_bounded(engine: Engine, team: Team) -> None:
    team.fail_tasks.add("find facts")
    team.plans += [PLAN, {"steps": [{"id": "again", "agent": "researcher", "task": "find facts"}]}]
    state = await engine.run(flow(plan_step(max_replans=1)))
    assert state.status == "failed"
    assert "plan failed after 1 replans" in (state.steps["plan"].error or "")


async def test_sequential_mode_chains_the_children(engine: Engine, team: Team) -> None:
    parallel_plan = {
        "steps": [
            {"id": "a", "agent": "researcher", "task": "one"},
            {"id": "b", "agent": "researcher", "task": "two"},
        ]
    }
    team.plans.append(parallel_plan)
    state = await engine.run(flow(plan_step(mode="sequential")))
    assert state.status == "succeeded", state.completed_error
    assert state.steps["plan.b"].spec.needs == ["plan.a"]


async def test_aggregator_output_is_the_plan_output(engine: Engine, team: Team) -> None:
    team.plans.append(PLAN)
    state = await engine.run(flow(plan_step(aggregator="writer")))
    assert state.status == "succeeded", state.completed_error
    assert state.steps["plan.aggregate"].spec.needs == ["plan.facts", "plan.note"]
    assert state.steps["plan"].output == state.steps["plan.aggregate"].output


async def test_confirmation_parks_the_run_until_approved(engine: Engine, team: Team) -> None:
    team.plans.append(PLAN)
    run_id = await engine.submit(flow(plan_step(confirm=True)))
    parked = await engine.wait(run_id)
    assert parked.status == "waiting"
    assert "plan.facts" not in parked.steps
    assert team.worker_calls == []
    await engine.approve(run_id)
    state = await engine.wait(run_id)
    assert state.status == "succeeded", state.completed_error
    assert len(team.planner_prompts) == 1  # approval reuses the recorded plan


async def test_an_edited_plan_is_checked_then_used(engine: Engine, team: Team) -> None:
    team.plans.append(PLAN)
    run_id = await engine.submit(flow(plan_step(confirm=True)))
    await engine.wait(run_id)
    with pytest.raises(SpecError) as info:
        await engine.approve(run_id, plan={"steps": [{"id": "z", "agent": "ghost", "task": "t"}]})
    assert "steps[0].agent" in str(info.value)
    edited = {"steps": [{"id": "only", "agent": "writer", "task": "just write"}]}
    await engine.approve(run_id, plan=edited)
    state = await engine.wait(run_id)
    assert state.status == "succeeded", state.completed_error
    assert set(state.steps) == {"plan", "plan.only"}


async def test_a_rejected_plan_fails_the_run(engine: Engine, team: Team) -> None:
    team.plans.append(PLAN)
    run_id = await engine.submit(flow(plan_step(confirm=True)))
    await engine.wait(run_id)
    await engine.reject(run_id, reason="too vague")
    state = await engine.wait(run_id)
    assert state.status == "failed"
    assert state.steps["plan"].error == "plan rejected: too vague"


async def test_a_resumed_run_reuses_the_recorded_plan(tmp_path: Path, team: Team) -> None:
    team.plans.append(PLAN)
    db = tmp_path / "p.db"
    async with await Engine.open(db, workspace=tmp_path) as first:
        run_id = await first.submit(flow(plan_step(confirm=True)))
        await first.wait(run_id)
    async with await Engine.open(db, workspace=tmp_path) as second:
        await second.approve(run_id)
        state = await second.wait(run_id)
    assert state.status == "succeeded", state.completed_error
    assert len(team.planner_prompts) == 1


async def test_a_manual_retry_after_a_replanned_failure_does_not_fail_the_run(
    engine: Engine, team: Team
) -> None:
    team.fail_tasks.add("write note")
    replan = {"steps": [{"id": "note2", "agent": "writer", "task": "again", "needs": ["facts"]}]}
    team.plans += [PLAN, replan]
    flaky = {
        "id": "flaky",
        "kind": "shell",
        "shell": "sh",
        "run": "test -e marker || { touch marker; exit 1; }",
        "on_failure": "collect",
    }
    state = await engine.run(flow(plan_step(), flaky))
    assert state.status == "failed"  # only because of `flaky`
    assert state.failures == ["flaky"]
    await engine.retry(state.run_id, "flaky")
    state = await engine.wait(state.run_id)
    assert state.steps["plan.note"].status is StepStatus.FAILED
    assert state.status == "succeeded"  # plan.note's failure stays the plan's business
