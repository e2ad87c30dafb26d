"""What every route takes from the app (the engine, the server's options), the strict body
model, and the check shared by the routes (the run exists)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict

from podium.config import ProjectConfig
from podium.core.state import RunState
from podium.runtime.engine import Engine

HEARTBEAT_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """What the routes need besides the engine: where new runs work, what validating uses (the
    project configuration, agents folder, default model), the SSE heartbeat."""

    workspace: Path
    config: ProjectConfig | None = None
    agents_dir: Path | None = None
    default_model: str | None = None
    heartbeat_seconds: float = HEARTBEAT_SECONDS


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _options(request: Request) -> ServerOptions:
    options: ServerOptions = request.app.state.options
    return options


EngineDep = Annotated[Engine, Depends(_engine)]
OptionsDep = Annotated[ServerOptions, Depends(_options)]


class Body(BaseModel):
    """A request body: unknown fields are refused (a typo is a 422, never silently ignored)."""

    model_config = ConfigDict(extra="forbid")


async def existing_run(engine: Engine, run_id: str) -> str:
    """`run_id` if the store has it; RunNotFoundError (404) otherwise."""
    return (await engine.store.get_run(run_id)).run_id


async def run_view(engine: Engine, run_id: str) -> RunState:
    """The run's committed state to render (a 404 if there is none): shared and cached, so
    read it before the next await and never change it (Engine.latest)."""
    return await engine.latest(await engine.store.get_run(run_id))
