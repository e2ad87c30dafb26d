"""A child process for the agent crash tests: an engine on a real SQLite file running one agent
step whose model and tools leave traces in files (what a real far side would see), and hang
where the test wants to kill the process with SIGKILL.

    python -m tests.crash.agent_world run|resume DB FOLDER [--hang-model-at N] [--hang-ledger]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from podium.llm.base import ModelRequest, ToolCall, ToolSpec
from podium.runtime.engine import Engine
from podium.runtime.services import AgentServices
from podium.steps.base import StepContext
from podium.store.sqlite import SQLiteEventStore
from podium.testing import FunctionModel, register_function_model
from podium.tools.base import Tool, ToolAnnotations, ToolContext

AGENT = "---\nname: writer\nmodel: function:crash\ntools: [ledger, lookup]\n---\nWrite.\n"
WORKFLOW = {
    "name": "w",
    "steps": [{"id": "write", "kind": "agent", "agent": "writer", "prompt": "Go"}],
}


def note(folder: Path, name: str, line: str) -> None:
    with (folder / name).open("a") as out:
        out.write(line + "\n")
        out.flush()


class _Tool:
    def __init__(self, name: str, folder: Path, hang: bool, read_only: bool) -> None:
        self.spec = ToolSpec(name, f"The {name} tool.", {"type": "object"})
        self.annotations = ToolAnnotations(read_only=read_only)
        self._folder, self._hang = folder, hang

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        note(self._folder, f"{self.spec.name}.log", str(arguments.get("line", "")))
        if self._hang:
            note(self._folder, "ready", self.spec.name)
            await asyncio.Event().wait()  # killed here, after the effect
        return "the answer is 42" if self.spec.name == "lookup" else "written"


class _Services(AgentServices):
    folder: Path
    hang_ledger: bool

    def tool_problems(self, names: Sequence[str]) -> list[str]:
        return []

    @asynccontextmanager
    async def toolbox(
        self, names: Sequence[str], ctx: StepContext
    ) -> AsyncIterator[Mapping[str, Tool]]:
        yield {
            "ledger": _Tool("ledger", self.folder, self.hang_ledger, read_only=False),
            "lookup": _Tool("lookup", self.folder, False, read_only=True),
        }


def _model(folder: Path, hang_at: int | None) -> FunctionModel:
    def reply(request: ModelRequest) -> Any:
        turn = sum(1 for m in request.messages if m.role == "assistant") + 1
        note(folder, "model.log", str(turn))
        if turn == hang_at:
            note(folder, "ready", f"model {turn}")
            return asyncio.Event().wait()
        if turn == 1:
            return [ToolCall("a", "lookup", {}), ToolCall("b", "ledger", {"line": "first"})]
        return "done"

    return FunctionModel(reply)


async def main(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    (folder / "agents").mkdir(exist_ok=True)
    (folder / "agents" / "writer.md").write_text(AGENT)
    register_function_model("crash", _model(folder, args.hang_model_at))
    services = _Services(project_dir=folder)
    services.folder, services.hang_ledger = folder, args.hang_ledger
    store = await SQLiteEventStore.open(args.db)
    async with Engine(store, workspace=folder, services=services) as engine:
        if args.mode == "run":
            state = await engine.run(WORKFLOW, run_id="crash")
        else:
            await engine.resume("crash")
            state = await engine.wait("crash")
    note(folder, "result", f"{state.status} {state.steps['write'].status}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["run", "resume"])
    parser.add_argument("db")
    parser.add_argument("folder")
    parser.add_argument("--hang-model-at", type=int, default=None)
    parser.add_argument("--hang-ledger", action="store_true")
    sys.exit(asyncio.run(main(parser.parse_args())))
