"""A child process for the tool-approval crash tests: an engine on a real SQLite file running one
agent step whose destructive `remove` tool must wait for a person. The model and the tools leave
traces in files (what a real far side would see); `--hang-tool` makes `remove` hang once its
effect is done, so the test can SIGKILL the process while the approved call is in flight.

    python -m tests.crash.tool_world run|approve|resume DB FOLDER [--hang-tool]

`run` parks the run on the held call and then stays alive (the test kills it); `approve` approves
the held call from this other process and waits; `resume` takes the run over and waits. Each
writes `<status> <step status>` to FOLDER/result when it returns.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.crash.agent_world import note

from podium.llm.base import ModelRequest, ToolCall, ToolSpec
from podium.runtime.engine import Engine
from podium.runtime.services import AgentServices
from podium.steps.base import StepContext
from podium.store.sqlite import SQLiteEventStore
from podium.testing import FunctionModel, register_function_model
from podium.tools.base import Tool, ToolAnnotations, ToolContext

AGENT = "---\nname: cleaner\nmodel: function:tidy\ntools: [lookup, remove]\n---\nTidy.\n"
WORKFLOW = {
    "name": "tidy",
    "steps": [{"id": "clean", "kind": "agent", "agent": "cleaner", "prompt": "Go"}],
}
RUN_ID = "crash"


class _Tool:
    def __init__(self, name: str, folder: Path, hang: bool, hints: ToolAnnotations) -> None:
        self.spec = ToolSpec(name, f"The {name} tool.", {"type": "object"})
        self.annotations = hints
        self._folder, self._hang = folder, hang

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        note(self._folder, f"{self.spec.name}.log", str(arguments.get("path", "-")))
        if self._hang:
            note(self._folder, "ready", self.spec.name)
            await asyncio.Event().wait()  # killed here, after the effect
        return f"removed {arguments.get('path')}" if self.spec.name == "remove" else "a.txt"


class _Services(AgentServices):
    folder: Path
    hang_tool: bool

    def tool_problems(self, names: Sequence[str]) -> list[str]:
        return []

    @asynccontextmanager
    async def toolbox(
        self, names: Sequence[str], ctx: StepContext
    ) -> AsyncIterator[Mapping[str, Tool]]:
        yield {
            "lookup": _Tool("lookup", self.folder, False, ToolAnnotations(read_only=True)),
            "remove": _Tool(
                "remove", self.folder, self.hang_tool, ToolAnnotations(destructive=True)
            ),
        }


def _model(folder: Path) -> FunctionModel:
    def reply(request: ModelRequest) -> Any:
        turn = sum(1 for m in request.messages if m.role == "assistant") + 1
        note(folder, "model.log", str(turn))
        if turn == 1:
            return [ToolCall("a", "lookup", {}), ToolCall("b", "remove", {"path": "a.txt"})]
        return "done"

    return FunctionModel(reply)


async def main(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    (folder / "agents").mkdir(exist_ok=True)
    (folder / "agents" / "cleaner.md").write_text(AGENT)
    register_function_model("tidy", _model(folder))
    services = _Services(project_dir=folder)
    services.folder, services.hang_tool = folder, args.hang_tool
    store = await SQLiteEventStore.open(args.db)
    async with Engine(store, workspace=folder, services=services) as engine:
        if args.mode == "run":
            state = await engine.run(WORKFLOW, run_id=RUN_ID)
            note(folder, "parked", state.status)
            await asyncio.Event().wait()  # parked: the test kills this process now
        if args.mode == "approve":
            await engine.approve(RUN_ID, "clean")
        else:
            await engine.resume(RUN_ID)
        state = await engine.wait(RUN_ID)
    note(folder, "result", f"{state.status} {state.steps['clean'].status}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["run", "approve", "resume"])
    parser.add_argument("db")
    parser.add_argument("folder")
    parser.add_argument("--hang-tool", action="store_true")
    sys.exit(asyncio.run(main(parser.parse_args())))
