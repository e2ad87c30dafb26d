"""The `podium` command line: one sync Typer entry per command, each running one async function.

Exit codes: 0 succeeded, 1 the run failed or was cancelled, 2 bad input (any PodiumError), 3 the
run is parked waiting for a person, 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from podium.cli import render
from podium.cli.view import watch
from podium.core.state import RunState
from podium.errors import PodiumError
from podium.runtime.engine import Engine
from podium.spec.load import load_workflow
from podium.spec.validate import coerce_inputs, parse_input_pairs
from podium.store.base import RunStatus

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
PIPE_WIDTH = 200

app = typer.Typer(
    name="podium",
    help="Podium: durable workflows. Run, inspect and steer runs recorded in an event store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class StatusName(StrEnum):
    pending = "pending"
    running = "running"
    waiting = "waiting"
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
    out: Console = field(default_factory=lambda: _console(stderr=False))
    err: Console = field(default_factory=lambda: _console(stderr=True))

    def note(self, text: str) -> None:
        """A human line: on stdout, or on stderr when stdout carries JSON."""
        (self.err if self.json else self.out).print(Text(text), soft_wrap=True)

    def emit(self, document: Any) -> None:
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")

    async def engine(self) -> Engine:
        return await Engine.open(self.db, agents_dir=self.agents, default_model=self.model)


def _session(ctx: typer.Context, db: str | None, as_json: bool = False) -> Session:
    return Session(db=db or (ctx.obj if isinstance(ctx.obj, str) else None), json=as_json)


def _execute(session: Session, work: Coroutine[Any, Any, int]) -> None:
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


async def _follow(session: Session, engine: Engine, run_id: str) -> RunState:
    """Wait for a run this engine drives, showing it live unless stdout carries JSON."""
    session.run_id = run_id
    if session.json:
        return await engine.wait(run_id)
    return await watch(engine, run_id, session.out)


def _finish(session: Session, state: RunState) -> int:
    """Print the summary (and, with --json, the `show` document); return the exit code."""
    for line in render.summary_lines(state):
        session.note(line)
    if session.json:
        session.emit(render.show_document(state))
    return render.exit_code(state)


async def _owner(engine: Engine, run_id: str) -> str:
    return (await engine.store.get_run(run_id)).owner or "the process driving it"


# ----------------------------------------------------------------------------------- commands


@app.callback()
def _root(ctx: typer.Context, db: DbOption = None) -> None:
    ctx.obj = db


@app.command()
def run(
    ctx: typer.Context,
    file: FileArg,
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", metavar="NAME=VALUE", help="A workflow input; repeatable."),
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Choose the run id.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    agents: AgentsOption = None,
    model: ModelOption = None,
) -> None:
    """Validate and run a workflow, showing it live until it completes or waits for a person."""
    session = _session(ctx, db, as_json)
    session.agents, session.model = agents, model
    _execute(session, _run(session, file, inputs or [], run_id))


async def _run(session: Session, file: Path, pairs: list[str], run_id: str | None) -> int:
    workflow = load_workflow(file)
    given = parse_input_pairs(pairs)
    coerce_inputs(workflow, given)  # bad inputs are refused before the store is touched
    async with await session.engine() as engine:
        rid = await engine.submit(workflow, given, run_id=run_id)
        session.note(f"run {rid}")
        state = await _follow(session, engine, rid)
    return _finish(session, state)


@app.command()
def validate(ctx: typer.Context, file: FileArg, db: DbOption = None) -> None:
    """Check a workflow file and list every problem found."""
    session = _session(ctx, db)
    _execute(session, _validate(session, file))


async def _validate(session: Session, file: Path) -> int:
    workflow = load_workflow(file)
    count = len(workflow.steps)
    session.note(f"ok: {workflow.name} ({count} step{'s' if count != 1 else ''})")
    return 0


@app.command()
def runs(
    ctx: typer.Context,
    status: Annotated[StatusName | None, typer.Option("--status", help="Only this status.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first."""
    session = _session(ctx, db, as_json)
    _execute(session, _runs(session, status, limit))


async def _runs(session: Session, status: StatusName | None, limit: int) -> int:
    statuses: list[RunStatus] | None = [status.value] if status is not None else None
    async with await session.engine() as engine:
        records = await engine.store.list_runs(statuses=statuses, limit=limit)
    if session.json:
        session.emit([render.run_document(r) for r in records])
    elif records:
        session.out.print(render.runs_table(records))
    else:
        session.note("no runs")
    return 0


@app.command()
def show(
    ctx: typer.Context, run_id: RunArg, db: DbOption = None, as_json: JsonOption = False
) -> None:
    """Show a run: its status, and each step's attempts, times, output or error."""
    session = _session(ctx, db, as_json)
    _execute(session, _show(session, run_id))


async def _show(session: Session, run_id: str) -> int:
    async with await session.engine() as engine:
        state = await engine.state(run_id)
        record = await engine.store.get_run(run_id)
    if session.json:
        session.emit(render.show_document(state))
    else:
        session.out.print(render.show_renderable(state, record))
    return 0


@app.command()
def events(
    ctx: typer.Context,
    run_id: RunArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream until it ends.")] = False,
    after: Annotated[int, typer.Option("--after", metavar="SEQ", min=0, help="Skip to here.")] = 0,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a run's events, one per line (with --json, one JSON object per line)."""
    session = _session(ctx, db, as_json)
    _execute(session, _events(session, run_id, follow, after))


async def _events(session: Session, run_id: str, follow: bool, after: int) -> int:
    async with await session.engine() as engine:
        async for stored in engine.events(run_id, after_seq=after, follow=follow):
            if session.json:
                line = json.dumps(render.event_document(stored), ensure_ascii=False)
            else:
                line = render.event_line(stored)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    return 0


@app.command()
def resume(
    ctx: typer.Context,
    run_id: RunArg,
    db: DbOption = None,
    agents: AgentsOption = None,
    model: ModelOption = None,
) -> None:
    """Take over a run nobody drives (after a crash or Ctrl-C) and finish it."""
    session = _session(ctx, db)
    session.agents, session.model = agents, model
    _execute(session, _resume(session, run_id))


async def _resume(session: Session, run_id: str) -> int:
    async with await session.engine() as engine:
        state = await engine.resume(run_id)
        if engine.is_driving(run_id):
            state = await _follow(session, engine, run_id)
        else:
            session.note(f"run {run_id} already {state.status}")
    return _finish(session, state)


@app.command()
def cancel(
    ctx: typer.Context,
    run_id: RunArg,
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded on the run.")] = "",
    db: DbOption = None,
) -> None:
    """Cancel a run: running steps are stopped (their process groups killed)."""
    session = _session(ctx, db)
    _execute(session, _cancel(session, run_id, reason))


async def _cancel(session: Session, run_id: str, reason: str) -> int:
    async with await session.engine() as engine:
        if not await engine.cancel(run_id, reason):
            session.note(f"cancel requested; {await _owner(engine, run_id)} will stop it")
            return 0
        session.run_id = run_id
        state = await engine.wait(run_id)
    session.note(f"run {run_id} {state.status}")
    return 0


def _step_command(verb: str, summary: str) -> None:
    """Register `podium retry|skip RUN STEP`: one body, two verbs."""

    def command(
        ctx: typer.Context,
        run_id: RunArg,
        step_id: StepArg,
        db: DbOption = None,
        agents: AgentsOption = None,
        model: ModelOption = None,
    ) -> None:
        session = _session(ctx, db)
        session.agents, session.model = agents, model
        _execute(session, _control(session, verb, run_id, step_id))

    command.__doc__ = summary
    app.command(name=verb)(command)


_step_command(
    "retry", "Run a failed, interrupted, cancelled or skipped step again, then what waits for it."
)
_step_command("skip", "Mark a waiting, interrupted or failed step skipped and carry on without it.")


async def _control(session: Session, verb: str, run_id: str, step_id: str) -> int:
    async with await session.engine() as engine:
        command = engine.retry if verb == "retry" else engine.skip
        if not await command(run_id, step_id):
            owner = await _owner(engine, run_id)
            session.note(f"{verb} of {step_id} requested; {owner} drives the run and picks it up")
            return 0
        state = await _follow(session, engine, run_id)
    return _finish(session, state)


def main() -> None:
    """The `podium` console script."""
    app()


from podium.cli import planning  # noqa: E402  (registers plan, approve and reject on `app`)

__all__ = ["app", "main", "planning"]

if __name__ == "__main__":  # `python -m podium.cli.app`: use the imported module, commands and all
    from podium.cli.app import main as _main

    _main()
