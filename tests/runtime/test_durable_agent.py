"""The durable agent loop on a real SQLite file: every model turn and tool call is recorded; an
agent step taken over by another engine replays what it recorded instead of asking the model or
calling the tool again; a side-effecting tool call that was in flight interrupts the step."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from podium.core import events as ev
from podium.core.state import StepStatus
from podium.llm.base import ModelRequest, ToolCall, ToolSpec
from podium.runtime.engine import Engine
from podium.runtime.services import AgentServices
from podium.steps.base import StepContext
from podium.testing import FunctionModel, register_function_model, unregister_function_model
from podium.tools.base import Tool, ToolAnnotations, ToolContext

AGENT = """---
name: writer
model: function:durable
tools: [ledger, lookup]
---
You write things down.
"""


@dataclass
class World:
    """What the test's model and tools did, across engines (as a real far side would see it)."""

    model_calls: list[int] = field(default_factory=list)  # the conversation's turn per call
    ledger: list[str] = field(default_factory=list)
    lookups: int = 0
    hang_model_at: int | None = None
    hang_ledger: bool = False
    hanging: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class _Tool:
    spec: ToolSpec
    world: World
    annotations: ToolAnnotations = field(default_factory=ToolAnnotations)

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        if self.spec.name == "lookup":
            self.world.lookups += 1
            return "the answer is 42"
        self.world.ledger.append(str(arguments.get("line")))
        if self.world.hang_ledger:
            self.world.hanging.set()
            await asyncio.Event().wait()  # the driver dies while the effect is done
        return "written"


class _Services(AgentServices):
    """The engine's agent services with the test's tools instead of the registry's."""

    world: World

    def tool_problems(self, names: Sequence[str]) -> list[str]:
        return []  # the test's own tools, not the registry's

    @asynccontextmanager
    async def toolbox(
        self, names: Sequence[str], ctx: StepContext
    ) -> AsyncIterator[Mapping[str, Tool]]:
        params = {"type": "object"}
        read_only = ToolAnnotations(read_only=True)
        yield {
            "ledger": _Tool(ToolSpec("ledger", "Appends a line.", params), self.world),
            "lookup": _Tool(ToolSpec("lookup", "Looks a fact up.", params), self.world, read_only),
        }


def _reply(world: World, request: ModelRequest) -> Any:
    turn = sum(1 for m in request.messages if m.role == "assistant") + 1
    world.model_calls.append(turn)
    if world.hang_model_at == turn:
        world.hanging.set()
        return asyncio.Event().wait()  # awaited by FunctionModel: hangs until cancelled
    if turn == 1:
        return [ToolCall("a", "lookup", {}), ToolCall("b", "ledger", {"line": "first"})]
    return "done"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "writer.md").write_text(AGENT)
    state = World()
    register_function_model("durable", FunctionModel(lambda r: _reply(state, r)))
    yield state
    unregister_function_model("durable")


async def _open(tmp_path: Path, world: World) -> Engine:
    from podium.store.sqlite import SQLiteEventStore

    services = _Services(project_dir=tmp_path)
    services.world = world
    store = await SQLiteEventStore.open(tmp_path / "p.db")
    return Engine(store, workspace=tmp_path, services=services)


WORKFLOW = {
    "name": "w",
    "steps": [{"id": "write", "kind": "agent", "agent": "writer", "prompt": "Go"}],
}


async def test_every_turn_and_tool_call_is_recorded(tmp_path: Path, world: World) -> None:
    async with await _open(tmp_path, world) as engine:
        state = await engine.run(WORKFLOW)
        events = [s.event for s in await engine.store.read(state.run_id)]
    assert state.steps["write"].output == "done"
    calls = [e for e in events if isinstance(e, ev.ModelCalled)]
    assert [(c.turn, bool(c.reply)) for c in calls] == [(1, True), (2, True)]
    assert all(c.estimated and c.input_tokens > 0 for c in calls)  # a function model counts
    assert calls[0].reply is not None
    assert [c["name"] for c in calls[0].reply["tool_calls"]] == ["lookup", "ledger"]
    started = [e for e in events if isinstance(e, ev.ToolStarted)]
    assert sorted((s.tool, s.safe) for s in started) == [("ledger", False), ("lookup", True)]
    finished = {e.call_id: e.result for e in events if isinstance(e, ev.ToolCalled)}
    assert finished == {"t1.0": "the answer is 42", "t1.1": "written"}
    ledger = next(e for e in events if isinstance(e, ev.ToolCalled) and e.tool == "ledger")
    assert (ledger.arguments, ledger.ok, ledger.latency_seconds >= 0) == (
        {"line": "first"},
        True,
        True,
    )


async def test_a_taken_over_agent_step_replays_instead_of_repeating(
    tmp_path: Path, world: World
) -> None:
    world.hang_model_at = 2  # the driver dies while the second turn is being asked
    async with await _open(tmp_path, world) as first:
        run_id = await first.submit(WORKFLOW)
        await asyncio.wait_for(world.hanging.wait(), 20)
    assert world.model_calls == [1, 2]
    assert (world.ledger, world.lookups) == (["first"], 1)
    world.hang_model_at = None
    async with await _open(tmp_path, world) as second:
        await second.resume(run_id)
        state = await second.wait(run_id)
    assert state.steps["write"].output == "done"
    assert world.model_calls == [1, 2, 2]  # turn 1 was replayed from the log, not asked again
    assert (world.ledger, world.lookups) == (["first"], 1)  # no tool ran twice


async def test_a_side_effecting_call_in_flight_interrupts_the_step(
    tmp_path: Path, world: World
) -> None:
    world.hang_ledger = True  # the driver dies after the ledger call started
    async with await _open(tmp_path, world) as first:
        run_id = await first.submit(WORKFLOW)
        await asyncio.wait_for(world.hanging.wait(), 20)
    world.hang_ledger = False
    async with await _open(tmp_path, world) as second:
        await second.resume(run_id)
        state = await second.wait(run_id)
    assert state.steps["write"].status is StepStatus.INTERRUPTED
    assert state.status == "waiting"
    assert world.ledger == ["first"]  # it was not made again
