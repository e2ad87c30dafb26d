"""What every command shares: the `Session` (store, output, the run it drives), the common
options, and turning a command's coroutine into the process's exit code.

Exit codes: 0 succeeded, 1 the run failed or was cancelled, 2 bad input (any PodiumError), 3 the
run is parked waiting for a person, 130 interrupted by Ctrl-C, 143 stopped by SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from podium import views
from podium.cli import render
from podium.cli.view import watch
from podium.config import CONFIG_ENV, ProjectConfig, load_config, recorded_config
from podium.core.events import DEFAULT_QUEUE
from podium.core.state import RunState
from podium.errors import PodiumError, UsageError
from podium.runtime.engine import Engine, EngineMode
from podium.runtime.workspace import choose_workspace
from podium.spec.load import WorkflowSource
from podium.store import default_store_path, open_store
from podium.store.base import EventStore, check_queue
from podium.store.memory import MemoryEventStore

EXIT_BAD_INPUT = 2
EXIT_PARKED = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
PIPE_WIDTH = 200


def _queue_name(value: str) -> str:
    try:
        return check_queue(value)
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from None


def queue_names(values: list[str] | None) -> list[str] | None:
    """`--queue NAME`, repeatable: each name checked as `--queue` is everywhere."""
    return None if values is None else [_queue_name(value) for value in values]


QueueOption = Annotated[
    str,
    typer.Option(
        "--queue",
        metavar="NAME",
        callback=_queue_name,
        help="The queue the run waits on: only a `podium worker --queue NAME` claims it.",
    ),
]


StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        "--db",
        metavar="URL",
        show_default=False,
        help="The event store: a SQLite file or URL, or postgresql://… "
        "(default: $PODIUM_DB, else .podium/podium.db).",
    ),
]


class StatusName(StrEnum):
    pending = "pending"
    running = "running"
    waiting = "waiting"
    dead = "dead"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="PATH",
        show_default=False,
        help="The event store: a SQLite file or URL (default: $PODIUM_DB, else .podium/podium.db).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", metavar="FILE", help="Write here (default: stdout)."),
]
RunArg = Annotated[str, typer.Argument(metavar="RUN", help="The run id.", show_default=False)]
StepArg = Annotated[str, typer.Argument(metavar="STEP", help="The step id.", show_default=False)]
FileArg = Annotated[Path, typer.Argument(metavar="FILE", help="A workflow file (YAML or JSON).")]
AgentsOption = Annotated[
    Path | None,
    typer.Option(
        "--agents",
        metavar="DIR",
        help="The project folder whose agents/ holds the agent catalog (default: here).",
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        show_default=False,
        help=f"The project configuration (default: ${CONFIG_ENV}, else the nearest podium.toml, "
        "pyproject.toml with [tool.podium] or .mcp.json; a run's own for an existing run).",
    ),
]
WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        metavar="DIR",
        show_default=False,
        help="The run's workspace, where relative paths, shell steps and python imports resolve "
        "(default: the workflow file's folder).",
    ),
]
HereWorkspaceOption = Annotated[  # commands that build their workflow (`plan`, `ask`)
    Path | None,
    typer.Option(
        "--workspace",
        metavar="DIR",
        show_default=False,
        help="The run's workspace, where its file and shell tools work (default: here).",
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        metavar="PROVIDER:MODEL",
        help="The model for agents that name none (default: $PODIUM_MODEL).",
    ),
]


def _console(*, stderr: bool) -> Console:
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH
    return console


@dataclass
class Session:
    """What one command invocation knows: where the store is, how to print, which run it drives."""

    db: str | None
    json: bool = False
    run_id: str | None = None
    agents: Path | None = None
    model: str | None = None
    config: Path | None = None
    workspace: Path | None = None
    out: Console = field(default_factory=lambda: _console(stderr=False))
    err: Console = field(default_factory=lambda: _console(stderr=True))

    def note(self, text: str) -> None:
        """A human line: on stdout, or on stderr when stdout carries JSON."""
        (self.err if self.json else self.out).print(Text(text), soft_wrap=True)

    def emit(self, document: Any) -> None:
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")

    async def engine(
        self,
        mode: EngineMode = "local",
        *,
        run_id: str | None = None,
        workspace: Path | None = None,
    ) -> Engine:
        """The command's engine: `local` drives the run it is about; `control` (for commands
        that only read) never drives anything. A local engine uses `--config` (else
        $PODIUM_CONFIG); without one, the configuration recorded on `run_id` (re-read, a note
        if it changed), or for a new run (`run_id` None) the project file nearest `workspace`
        (the new run's; its agents/ is the default catalog too)."""
        store = await self._store(writes=mode != "control")
        try:
            config = await self._config(store, run_id, workspace) if mode != "control" else None
            return Engine(
                store,
                mode=mode,
                agents_dir=self.agents,
                default_model=self.model,
                config=config,
                workspace=workspace,
            )
        except BaseException:
            await store.close()
            raise

    async def rehearse(
        self, workflow: WorkflowSource, inputs: Mapping[str, Any] | None, workspace: Path
    ) -> None:
        """Submit to an engine over a store in memory that drives nothing: whatever the real
        submission would refuse (a bad model, agent, tool or input) is refused before the
        command's store is opened, so a refused run leaves no store file behind either."""
        memory = MemoryEventStore()
        async with Engine(
            memory,
            mode="control",
            agents_dir=self.agents,
            default_model=self.model,
            config=await self._config(memory, None, workspace),
            workspace=workspace,
        ) as rehearsal:
            await rehearsal.submit(workflow, inputs)

    def named_store(self) -> str | None:
        """The store `--db` or $PODIUM_DB names; None for the default one."""
        return self.db if self.db is not None else os.environ.get("PODIUM_DB") or None

    async def _store(self, *, writes: bool) -> EventStore:
        """The store the command names. Commands that only read never create or migrate one: a
        missing `--db`/$PODIUM_DB file is an error, a missing default store reads as empty."""
        named = self.named_store()
        if writes:
            return await open_store(named if named is not None else default_store_path())
        if named is None and not default_store_path().exists():
            return await open_store("memory:")  # no store here yet: nothing to read or create
        return await open_store(named if named is not None else default_store_path(), create=False)

    async def _config(
        self, store: EventStore, run_id: str | None, workspace: Path | None
    ) -> ProjectConfig | None:
        if self.config is not None or os.environ.get(CONFIG_ENV):
            return load_config(path=self.config)
        if run_id is None:
            return load_config(workspace)
        record = getattr((await store.read(run_id))[0].event, "config", None)
        if not record:
            return None
        config, note = recorded_config(record)
        if note:
            self.note(note)
        return config


def session(
    ctx: typer.Context,
    db: str | None,
    as_json: bool = False,
    *,
    agents: Path | None = None,
    model: str | None = None,
    config: Path | None = None,
    workspace: Path | None = None,
) -> Session:
    """The command's session: `--db` and `--config` given after the command win over the ones
    before it."""
    root = ctx.obj if isinstance(ctx.obj, dict) else {}
    return Session(
        db=db or root.get("db"),
        json=as_json,
        agents=agents,
        model=model,
        config=config or root.get("config"),
        workspace=workspace,
    )


def execute(session: Session, work: Coroutine[Any, Any, int]) -> None:
    """Run the command's coroutine and turn its result or error into the process's exit code."""
    try:
        code = asyncio.run(_terminable(work))
    except PodiumError as exc:
        session.err.print(Text(f"error: {exc}", style="red"), soft_wrap=True)
        code = EXIT_BAD_INPUT
    except (KeyboardInterrupt, asyncio.CancelledError) as exc:
        code = EXIT_INTERRUPTED if isinstance(exc, KeyboardInterrupt) else EXIT_TERMINATED
        hint = f"; resume the run with `podium resume {session.run_id}`" if session.run_id else ""
        session.err.print(Text(f"interrupted{hint}"), soft_wrap=True)
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    raise typer.Exit(code)


async def _terminable(work: Coroutine[Any, Any, int]) -> int:
    """SIGTERM cancels the command like Ctrl-C does, so running steps are stopped cleanly."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await work
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def follow(session: Session, engine: Engine, run_id: str) -> RunState:
    """Wait for a run this engine drives, showing it live unless stdout carries JSON."""
    session.run_id = run_id
    if session.json:
        state = await engine.wait(run_id)
    else:
        state = await watch(engine, run_id, session.out)
    parent = state.parent["run_id"] if state.parent is not None else None
    if state.outcome is not None and parent is not None and engine.is_driving(parent):
        session.note(f"child run {run_id} {state.outcome}; its parent {parent} goes on")
        return await follow(session, engine, parent)  # a child's end woke its parent here
    return state


async def submit_and_follow(
    session: Session,
    workflow: WorkflowSource,
    inputs: Mapping[str, Any] | None = None,
    *,
    run_id: str | None = None,
    queue: str = DEFAULT_QUEUE,
) -> int:
    """Submit a new run, show it until it ends or waits for a person, and return the exit code.
    Its workspace is `session.workspace`, else the workflow file's folder, else this one."""
    workspace = choose_workspace(workflow, session.workspace)
    await session.rehearse(workflow, inputs, workspace)
    async with await session.engine(workspace=workspace) as engine:
        rid = await engine.submit(workflow, inputs, run_id=run_id, queue=queue)
        session.note(f"run {rid}")
        session.note(f"workspace: {workspace}")
        state = await follow(session, engine, rid)
        return await finish(session, engine, state)


async def finish(session: Session, engine: Engine, state: RunState) -> int:
    """Print the summary (and, with --json, the `show` document); return the exit code."""
    for line in render.summary_lines(state):
        session.note(line)
    for step_id, child in await engine.children.awaits_person(state):
        session.note(f"  step {step_id}: child run {child.run_id} waits for a person")
        for line in render.summary_lines(child)[1:]:
            session.note(f"  {line}")
    if session.json:
        session.emit(views.show_document(state, await engine.store.get_run(state.run_id)))
    return exit_code(state)


def exit_code(state: RunState) -> int:
    """0 succeeded, 1 failed, cancelled or dead-lettered, 3 parked waiting for a person."""
    if state.status == "succeeded":
        return 0
    return EXIT_PARKED if state.status == "waiting" else 1


async def owner(engine: Engine, run_id: str) -> str:
    return (await engine.store.get_run(run_id)).owner or "the process driving it"
