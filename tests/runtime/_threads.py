"""What the thread and routing tests share: a project with a few agents whose model is a
function that answers `<agent>: <message>` (the router answers the JSON the test chose), can be
held until the test lets it answer, and keeps every request it got."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from podium.config import ProjectConfig
from podium.llm.base import ModelRequest
from podium.runtime.engine import Engine
from podium.testing import FunctionModel, register_function_model, unregister_function_model

MODEL = "function:threads-test"
AGENTS = {
    "assistant": "Answers anything.",
    "coder": "Writes and fixes code.",
    "writer": "Writes prose.",
    "router": "Chooses who answers.",
}


@dataclass
class Model:
    """The agents' model: `calls` holds every request; while `held` is set, answers wait for
    `release`; `route` is what the router answers."""

    calls: list[ModelRequest] = field(default_factory=list)
    route: Any = None
    held: bool = False
    _release: asyncio.Event | None = None
    started: asyncio.Event | None = None

    async def reply(self, request: ModelRequest) -> str:
        self.calls.append(request)
        if request.agent == "router":
            return json.dumps(self.route)
        if self.started is not None:
            self.started.set()
        if self.held:
            assert self._release is not None
            await self._release.wait()
        return f"{request.agent}: {request.messages[-1].content}"

    def hold(self) -> None:
        self.held, self._release, self.started = True, asyncio.Event(), asyncio.Event()

    def release(self) -> None:
        self.held = False
        if self._release is not None:
            self._release.set()

    def asked(self, agent: str) -> list[ModelRequest]:
        return [c for c in self.calls if c.agent == agent]


@pytest.fixture
def model() -> Iterator[Model]:
    fake = Model()
    register_function_model("threads-test", FunctionModel(fake.reply, name=MODEL))
    yield fake
    unregister_function_model("threads-test")


def project(tmp_path: Path, agents: dict[str, str] = AGENTS) -> Path:
    (tmp_path / "agents").mkdir(exist_ok=True)
    for name, description in agents.items():
        front = f"name: {name}\ndescription: {description}\nmodel: {MODEL}"
        text = f"---\n{front}\n---\nYou are {name}.\n"
        (tmp_path / "agents" / f"{name}.md").write_text(text)
    return tmp_path


async def open_engine(tmp_path: Path, **config: Any) -> Engine:
    """An engine on a SQLite store in `tmp_path` with the project configuration `config`."""
    project(tmp_path)
    settings = ProjectConfig.model_validate({"root": tmp_path, **config})
    return await Engine.open(
        tmp_path / "podium.db", workspace=tmp_path, agents_dir=tmp_path, config=settings
    )


def conversation(request: ModelRequest) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in request.messages]
