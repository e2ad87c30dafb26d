"""A person approves an agent's destructive tool call, through the engine and a real SQLite file:
the call is held before it is made (the step waits, the run parks), then approved (made once),
edited (made once with the edited arguments, checked against the tool's schema) or rejected
(never made, and the model reads why); the model turns before it are never asked again; the
policy rule `destructive_tools` turned off lets the call run unasked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from podium.config import ProjectConfig
from podium.core import events as ev
from podium.core.state import StepStatus
from podium.errors import InvalidTransitionError, UsageError
from podium.llm.base import ModelRequest, ToolCall, ToolSpec
from podium.runtime.engine import Engine
from podium.runtime.services import AgentServices
from podium.spec.policy import ApprovalRules, Policy
from podium.steps.base import StepContext
from podium.store.sqlite import SQLiteEventStore
from podium.testing import FunctionModel, register_function_model, unregister_function_model
from podium.tools.base import Tool, ToolAnnotations, ToolContext

AGENT = "---\nname: cleaner\nmodel: function:tidy\ntools: [lookup, remove]\n---\nTidy up.\n"
WORKFLOW = {
    "name": "tidy",
    "steps": [{"id": "clean", "kind": "agent", "agent": "cleaner", "prompt": "Go"}],
}
REMOVE_SCHEMA = {
    "type": "object",
    "properties": {"path": {"type": "string"}},
    "required": ["path"],
    "additionalProperties": False,
}


@dataclass
class World:
    """What the model and the tools did, as the far side would see it."""

    first_turn: list[ToolCall] = field(default_factory=list)
    model_turns: list[int] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)  # the tool results each later turn was given
    removed: list[str] = field(default_factory=list)
    lookups: int = 0


@dataclass(frozen=True)
class _Tool:
    spec: ToolSpec
    world: World
    annotations: ToolAnnotations

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        if self.spec.name == "lookup":
            self.world.lookups += 1
            return "a.txt is old"
        self.world.removed.append(str(arguments["path"]))
        return f"removed {arguments['path']}"


class _Services(AgentServices):
    world: World

    def tool_problems(self, names: Sequence[str]) -> list[str]:
        return []

    @asynccontextmanager
    async def toolbox(
        self, names: Sequence[str], ctx: StepContext
    ) -> AsyncIterator[Mapping[str, Tool]]:
        lookup = ToolSpec("lookup", "Looks a file up.", {"type": "object"})
        remove = ToolSpec("remove", "Removes a file.", REMOVE_SCHEMA)
        yield {
            "lookup": _Tool(lookup, self.world, ToolAnnotations(read_only=True)),
            "remove": _Tool(remove, self.world, ToolAnnotations(destructive=True)),
        }


def _reply(world: World, request: ModelRequest) -> Any:
    turn = sum(1 for m in request.messages if m.role == "assistant") + 1
    world.model_turns.append(turn)
    if turn == 1:
        return list(world.first_turn)
    world.heard += [m.content for m in request.messages if m.role == "tool"]
    return "done"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "cleaner.md").write_text(AGENT)
    state = World(
        first_turn=[ToolCall("x", "lookup", {}), ToolCall("y", "remove", {"path": "a.txt"})]
    )
    register_function_model("tidy", FunctionModel(lambda r: _reply(state, r)))
    yield state
    unregister_function_model("tidy")


async def _open(tmp_path: Path, world: World) -> Engine:
    services = _Services(project_dir=tmp_path)
    services.world = world
    store = await SQLiteEventStore.open(tmp_path / "p.db")
    return Engine(store, workspace=tmp_path, services=services)


async def _parked(engine: Engine) -> str:
    run_id = await engine.submit(WORKFLOW)
    state = await engine.wait(run_id)
    assert (state.status, state.awaits_person) == ("waiting", True)
    assert state.steps["clean"].status is StepStatus.WAITING
    return run_id


async def _events(engine: Engine, run_id: str) -> list[ev.Event]:
    return [s.event for s in await engine.store.read(run_id)]


async def test_a_destructive_call_waits_for_a_person_and_the_safe_one_stays_done(
    tmp_path: Path, world: World
) -> None:
    async with await _open(tmp_path, world) as engine:
        run_id = await _parked(engine)
        (waiting,) = await engine.approvals(run_id)
        events = await _events(engine, run_id)
    assert (waiting.step_id, waiting.subject) == ("clean", "tool")
    assert waiting.input["tool"] == "remove"
    assert waiting.input["arguments"] == {"path": "a.txt"}
    assert (waiting.input["call_id"], waiting.input["server"]) == ("t1.1", None)
    assert waiting.reason == "policy: destructive_tools"
    assert world.removed == []  # not made
    assert (world.lookups, world.model_turns) == (1, [1])  # the safe call ran, once
    done = [e for e in events if isinstance(e, ev.ToolCalled)]
    assert [(e.call_id, e.tool) for e in done] == [("t1.0", "lookup")]  # recorded
    assert not any(isinstance(e, ev.StepFailed | ev.StepRetrying) for e in events)


async def test_approved_the_call_is_made_once_and_no_model_turn_is_asked_again(
    tmp_path: Path, world: World
) -> None:
    async with await _open(tmp_path, world) as engine:
        run_id = await _parked(engine)
        assert await engine.approve(run_id, "clean")
        state = await engine.wait(run_id)
        with pytest.raises(InvalidTransitionError, match="not awaiting approval"):
            await engine.approve(run_id, "clean")  # decided once: a second time is refused
        events = await _events(engine, run_id)
    assert (state.status, state.steps["clean"].output) == ("succeeded", "done")
    assert world.removed == ["a.txt"]
    assert world.model_turns == [1, 2]  # turn 1 was replayed from the log
    assert world.lookups == 1
    assert world.heard == ["a.txt is old", "removed a.txt"]
    started = [e.attempt for e in events if isinstance(e, ev.StepStarted)]
    assert started == [1, 1]  # the same attempt went on


async def test_rejected_the_call_is_never_made_and_the_model_hears_why(
    tmp_path: Path, world: World
) -> None:
    async with await _open(tmp_path, world) as engine:
        run_id = await _parked(engine)
        await engine.reject(run_id, "clean", reason="keep a.txt")
        state = await engine.wait(run_id)
        events = await _events(engine, run_id)
    assert (state.status, state.steps["clean"].status) == ("succeeded", StepStatus.SUCCEEDED)
    assert world.removed == []
    assert world.heard[-1] == "error: a person rejected this call: keep a.txt"
    refused = [e for e in events if isinstance(e, ev.ToolCalled) and e.tool == "remove"]
    assert [(e.ok, e.error) for e in refused] == [
        (False, "a person rejected this call: keep a.txt")
    ]


async def test_edited_the_call_is_made_with_the_edited_arguments_checked_by_the_schema(
    tmp_path: Path, world: World
) -> None:
    async with await _open(tmp_path, world) as engine:
        run_id = await _parked(engine)
        with pytest.raises(UsageError, match=r"edited arguments of tool remove .* not valid"):
            await engine.approve(run_id, "clean", set=["mode=force"])  # not in the schema
        with pytest.raises(UsageError, match="path: 3 is not of type 'string'"):
            await engine.approve(run_id, "clean", edit={"path": 3})
        assert await engine.store.pending_signals(run_id) == []  # nothing was posted
        await engine.approve(run_id, "clean", set=["path=b.txt"])
        state = await engine.wait(run_id)
        events = await _events(engine, run_id)
    assert state.status == "succeeded"
    assert world.removed == ["b.txt"]
    assert world.heard[-1].endswith("removed b.txt")
    assert "changed this call's arguments" in world.heard[-1]
    made = [e for e in events if isinstance(e, ev.ToolStarted) and e.tool == "remove"]
    assert [e.arguments for e in made] == [{"path": "b.txt"}]


async def test_two_destructive_calls_of_one_turn_are_asked_one_at_a_time(
    tmp_path: Path, world: World
) -> None:
    world.first_turn = [
        ToolCall("p", "remove", {"path": "p.txt"}),
        ToolCall("q", "remove", {"path": "q.txt"}),
    ]
    async with await _open(tmp_path, world) as engine:
        run_id = await _parked(engine)
        (first,) = await engine.approvals(run_id)
        await engine.approve(run_id, "clean")
        state = await engine.wait(run_id)
        assert state.status == "waiting"
        (second,) = await engine.approvals(run_id)
        await engine.reject(run_id, "clean", reason="not q")
        state = await engine.wait(run_id)
    assert [first.input["call_id"], second.input["call_id"]] == ["t1.0", "t1.1"]
    assert state.status == "succeeded"
    assert world.removed == ["p.txt"]  # approved once, made once; the rejected never
    assert world.model_turns == [1, 2]
    assert world.heard == ["removed p.txt", "error: a person rejected this call: not q"]


async def test_with_the_destructive_tools_rule_off_the_call_runs_unasked(
    tmp_path: Path, world: World
) -> None:
    loose = Policy(approve=ApprovalRules(destructive_tools=False))
    services = _Services(project_dir=tmp_path, config=ProjectConfig(root=tmp_path, policy=loose))
    services.world = world
    store = await SQLiteEventStore.open(tmp_path / "p.db")
    async with Engine(store, workspace=tmp_path, services=services) as engine:
        state = await engine.run(WORKFLOW)
        events = await _events(engine, state.run_id)
    assert state.status == "succeeded"
    assert world.removed == ["a.txt"]
    assert not any(isinstance(e, ev.ApprovalRequested) for e in events)


async def test_a_parked_call_is_approved_from_a_new_engine_and_made_once(
    tmp_path: Path, world: World
) -> None:
    """Parked, the engine closed, a new engine (another process would do the same) approves:
    the call is made once, turn 1 is replayed."""
    async with await _open(tmp_path, world) as first:
        run_id = await _parked(first)
    async with await _open(tmp_path, world) as second:
        assert await second.approve(run_id, "clean")
        state = await second.wait(run_id)
    assert state.status == "succeeded"
    assert (world.removed, world.model_turns, world.lookups) == (["a.txt"], [1, 2], 1)


async def test_skipped_while_its_call_is_held_the_call_is_never_made(
    tmp_path: Path, world: World
) -> None:
    async with await _open(tmp_path, world) as engine:
        run_id = await _parked(engine)
        await engine.skip(run_id, "clean")
        state = await engine.wait(run_id)
        with pytest.raises(InvalidTransitionError, match="not awaiting approval"):
            await engine.approve(run_id, "clean")
        events = await _events(engine, run_id)
    assert (state.status, state.steps["clean"].status) == ("succeeded", StepStatus.SKIPPED)
    assert (world.removed, world.model_turns) == ([], [1])
    withdrawn = [e.reason for e in events if isinstance(e, ev.ApprovalWithdrawn)]
    assert withdrawn == ["skipped"]


async def test_a_held_call_on_a_branch_an_any_join_no_longer_needs_is_withdrawn(
    tmp_path: Path, world: World
) -> None:
    waits_for_go = "while [ ! -f go ]; do sleep 0.02; done"  # finishes once the call is held
    wf = {
        "name": "race",
        "steps": [
            *WORKFLOW["steps"],
            {"id": "other", "kind": "shell", "shell": "sh", "run": waits_for_go},
            {
                "id": "first",
                "kind": "shell",
                "run": "echo",
                "needs": ["clean", "other"],
                "join": "any",
            },
        ],
    }
    async with await _open(tmp_path, world) as engine:
        run_id = await engine.submit(wf)
        while not await engine.approvals(run_id):
            await asyncio.sleep(0.02)
        (tmp_path / "go").touch()
        state = await engine.wait(run_id)
        events = await _events(engine, run_id)
    assert state.status == "succeeded"
    assert (state.steps["clean"].status, state.steps["clean"].reason) == (
        StepStatus.CANCELLED,
        "lost_race",
    )
    assert [e.reason for e in events if isinstance(e, ev.ApprovalWithdrawn)] == ["lost_race"]
    assert world.removed == []
