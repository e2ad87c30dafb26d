"""Forking a run: a new run of the same workflow takes over the parent's outputs upstream of the
fork step (shell steps that must not run again count their runs in a file), runs the fork step
and what follows anew, reuses a recorded plan, and a resumed fork does not run reused steps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from podium.core import events as ev
from podium.core.fold import replay
from podium.core.scheduler import decide
from podium.core.state import StepStatus
from podium.errors import InputError, ModelError, RunNotFoundError, UsageError
from podium.llm.base import ModelRequest
from podium.runtime.engine import Engine
from podium.store.base import Lease
from podium.store.memory import MemoryEventStore
from podium.testing import FunctionModel, register_function_model, unregister_function_model


def counted(step_id: str, *needs: str, echo: str | None = None) -> dict[str, Any]:
    """A shell step that appends its id to runs.log (so the test sees every time it ran) and
    prints `echo`, or its id."""
    text = echo or step_id
    run = f"echo {step_id} >> runs.log && echo {text}"
    return {"id": step_id, "kind": "shell", "shell": "sh", "run": run, "needs": list(needs)}


def diamond(**fields: Any) -> dict[str, Any]:
    steps = [
        counted("a"),
        counted("b", "a", echo="b-${{ inputs.tag }}"),
        counted("c", "a"),
        counted("d", "b", "c"),
    ]
    return {"name": "diamond", "inputs": {"tag": {"default": "one"}}, "steps": steps, **fields}


def runs(tmp_path: Path) -> list[str]:
    log = tmp_path / "runs.log"
    return log.read_text().split() if log.exists() else []


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with await Engine.open(tmp_path / "podium.db", workspace=tmp_path) as eng:
        yield eng


async def test_a_fork_reuses_what_is_not_downstream_and_runs_the_rest(
    engine: Engine, tmp_path: Path
) -> None:
    parent = await engine.run(diamond())
    assert parent.status == "succeeded"
    (tmp_path / "runs.log").unlink()
    fork_id = await engine.fork(parent.run_id, "b")
    state = await engine.wait(fork_id)
    assert state.status == "succeeded", state.completed_error
    assert sorted(runs(tmp_path)) == ["b", "d"]  # a and c did not run again
    assert state.steps["a"].output == parent.steps["a"].output == "a"
    assert state.steps["c"].status is StepStatus.SUCCEEDED
    assert state.steps["c"].started_at is None  # reused, never started here
    assert state.fork is not None
    assert (state.fork.parent_run_id, state.fork.from_step) == (parent.run_id, "b")
    assert sorted(state.fork.reused) == ["a", "c"]
    kinds = [s.event.kind for s in await engine.store.read(fork_id)]
    assert kinds[:2] == ["run.created", "run.forked"]
    assert "a" not in {getattr(s.event, "step_id", None) for s in await engine.store.read(fork_id)}


async def test_an_input_given_to_the_fork_overrides_the_parents(
    engine: Engine, tmp_path: Path
) -> None:
    parent = await engine.run(diamond(), {"tag": "one"})
    state = await engine.wait(await engine.fork(parent.run_id, "d", {"tag": "two"}))
    assert state.status == "succeeded", state.completed_error
    assert state.inputs == {"tag": "two"}
    assert state.steps["b"].output == "b-two"  # b reads the changed input, so it ran again
    assert state.fork is not None
    assert sorted(state.fork.reused) == ["a", "c"]


async def test_a_fork_from_a_failed_step_runs_it_and_what_it_stopped(
    engine: Engine, tmp_path: Path
) -> None:
    flag = tmp_path / "fixed"
    doc = diamond()
    doc["steps"][1] = {
        "id": "b",
        "kind": "shell",
        "shell": "sh",
        "needs": ["a"],
        "run": "test -e fixed",
    }
    parent = await engine.run(doc)
    assert parent.status == "failed"
    flag.touch()
    (tmp_path / "runs.log").unlink()
    state = await engine.wait(await engine.fork(parent.run_id, "b"))
    assert state.status == "succeeded", state.completed_error
    assert "a" not in runs(tmp_path)
    assert state.steps["d"].status is StepStatus.SUCCEEDED


async def test_a_resumed_fork_does_not_run_its_reused_steps(tmp_path: Path) -> None:
    db = tmp_path / "podium.db"
    async with await Engine.open(db, workspace=tmp_path) as first:
        parent = await first.run(diamond())
    async with await Engine.open(db, mode="control") as control:  # records it, drives nothing
        fork_id = await control.fork(parent.run_id, "d")
    (tmp_path / "runs.log").unlink()
    async with await Engine.open(db, workspace=tmp_path) as second:
        await second.resume(fork_id)
        state = await second.wait(fork_id)
    assert state.status == "succeeded", state.completed_error
    assert runs(tmp_path) == ["d"]
    assert state.fork is not None
    assert sorted(state.fork.reused) == ["a", "b", "c"]


async def test_bad_fork_requests_create_nothing(engine: Engine) -> None:
    parent = await engine.run(diamond())
    with pytest.raises(RunNotFoundError):
        await engine.fork("nope", "b")
    with pytest.raises(UsageError, match='did you mean "b"'):
        await engine.fork(parent.run_id, "bb")
    with pytest.raises(InputError):
        await engine.fork(parent.run_id, "b", {"nope": "1"})
    assert [r.run_id for r in await engine.list_runs()] == [parent.run_id]


# ----------------------------------------------------------------------------------------- plans

AGENT = "---\nname: {name}\ndescription: {name}\nmodel: function:{model}\n---\nYou are {name}.\n"
PLAN = {
    "steps": [
        {"id": "facts", "agent": "researcher", "task": "find facts"},
        {"id": "note", "agent": "writer", "task": "write note", "needs": ["facts"]},
        {"id": "side", "agent": "researcher", "task": "side work"},
    ]
}


class Team:
    def __init__(self) -> None:
        self.planned = 0
        self.tasks: list[str] = []
        self.answered = 0
        self.failing: set[str] = set()

    def planner(self, request: ModelRequest) -> Any:
        self.planned += 1
        return PLAN

    def worker(self, request: ModelRequest) -> Any:
        task = request.messages[1].content.split("\n")[0]
        self.tasks.append(task)
        if task in self.failing:
            raise ModelError("bad request", retryable=False, provider="function", status=400)
        self.answered += 1
        return f"done: {task} #{self.answered}"


@pytest.fixture
def team(tmp_path: Path) -> Iterator[Team]:
    team = Team()
    register_function_model("fork-planner", FunctionModel(team.planner, name="function:p"))
    register_function_model("fork-worker", FunctionModel(team.worker, name="function:w"))
    agents = tmp_path / "agents"
    agents.mkdir()
    for name, model in [
        ("planner", "fork-planner"),
        ("researcher", "fork-worker"),
        ("writer", "fork-worker"),
    ]:
        (agents / f"{name}.md").write_text(AGENT.format(name=name, model=model))
    yield team
    unregister_function_model("fork-planner")
    unregister_function_model("fork-worker")


def planned() -> dict[str, Any]:
    plan = {"id": "plan", "kind": "plan", "goal": "a note", "aggregator": "writer"}
    return {
        "name": "planned",
        "steps": [counted("first"), {**plan, "needs": ["first"]}, counted("after", "plan")],
    }


async def test_a_fork_after_a_plan_reuses_the_plan_and_its_children(
    engine: Engine, team: Team, tmp_path: Path
) -> None:
    parent = await engine.run(planned())
    assert parent.status == "succeeded", parent.completed_error
    tasks = len(team.tasks)
    state = await engine.wait(await engine.fork(parent.run_id, "after"))
    assert state.status == "succeeded", state.completed_error
    assert (team.planned, len(team.tasks)) == (1, tasks)  # no planner call, no child ran
    assert state.steps["plan.note"].output == parent.steps["plan.note"].output
    assert state.steps["plan"].output == parent.steps["plan"].output
    assert runs(tmp_path) == ["first", "after", "after"]


async def test_a_fork_from_a_plan_child_reruns_it_and_what_follows_it(
    engine: Engine, team: Team, tmp_path: Path
) -> None:
    parent = await engine.run(planned())
    team.tasks.clear()
    state = await engine.wait(await engine.fork(parent.run_id, "plan.facts"))
    assert state.status == "succeeded", state.completed_error
    assert team.planned == 1  # the recorded plan was reused
    assert sorted(t.split(":")[0] for t in team.tasks) == [
        "Goal",  # the aggregator
        "find facts",
        "write note",
    ]
    assert state.steps["plan.side"].output == parent.steps["plan.side"].output
    assert state.steps["plan.facts"].output != parent.steps["plan.facts"].output
    assert state.steps["plan"].output == state.steps["plan.aggregate"].output
    assert runs(tmp_path) == ["first", "after", "after"]  # `first` reused, `after` ran again
    assert state.fork is not None
    assert sorted(state.fork.reused) == ["first", "plan.side"]


async def test_a_fork_from_the_child_that_failed_its_plan_finishes_the_run(
    engine: Engine, team: Team, tmp_path: Path
) -> None:
    team.failing.add("side work")
    doc = planned()
    doc["steps"][1]["max_replans"] = 0
    parent = await engine.run(doc)
    assert parent.status == "failed"
    assert parent.steps["plan.side"].status is StepStatus.FAILED
    team.failing.clear()
    state = await engine.wait(await engine.fork(parent.run_id, "plan.side"))
    assert state.status == "succeeded", state.completed_error
    assert team.planned == 1
    assert state.steps["after"].status is StepStatus.SUCCEEDED
    assert state.steps["plan"].output == state.steps["plan.aggregate"].output


async def test_a_parent_that_has_not_finished_gives_only_what_it_committed(
    engine: Engine, tmp_path: Path
) -> None:
    pending = await engine.submit(diamond(), start=False)  # recorded, never driven
    state = await engine.wait(await engine.fork(pending, "c"))
    assert state.status == "succeeded", state.completed_error
    assert state.fork is not None
    assert state.fork.reused == ()
    assert sorted(runs(tmp_path)) == ["a", "b", "c", "d"]


class CreateRefused(MemoryEventStore):
    """A store that cannot create the fork (a disk full at that moment)."""

    async def create_run(self, created: ev.RunCreated, **options: Any) -> Lease | None:
        if options.get("then"):
            raise OSError("disk full")
        return await super().create_run(created, **options)


async def test_a_fork_the_store_cannot_create_leaves_nothing_behind(tmp_path: Path) -> None:
    async with Engine(CreateRefused(), workspace=tmp_path) as engine:
        parent = await engine.run(diamond())
        (tmp_path / "runs.log").unlink()
        with pytest.raises(OSError, match="disk full"):
            await engine.fork(parent.run_id, "d")
        assert [r.run_id for r in await engine.list_runs()] == [parent.run_id]
        assert runs(tmp_path) == []


async def test_the_fork_event_folds_the_reused_steps_finished_and_starts_only_the_rest(
    engine: Engine,
) -> None:
    parent = await engine.run(diamond())
    fork_id = await engine.fork(parent.run_id, "b")
    await engine.wait(fork_id)
    stored = await engine.store.read(fork_id)
    state = replay(s.event for s in stored[:2])  # run.created, run.forked
    assert {k: str(s.status) for k, s in state.steps.items()} == {
        "a": "succeeded",
        "b": "ready",
        "c": "succeeded",
        "d": "pending",
    }
    assert state.unfinished == 2
    assert decide(state, stored[1].event.at).start == ["b"]
