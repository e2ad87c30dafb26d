"""`podium ask "MESSAGE"`: a message on a thread (a conversation), answered by a routed agent and
shown live like `podium run`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from podium.cli._session import (
    AgentsOption,
    ConfigOption,
    DbOption,
    HereWorkspaceOption,
    JsonOption,
    ModelOption,
    Session,
    execute,
    finish,
    follow,
    session,
)
from podium.errors import StoreUnavailableError, UsageError
from podium.runtime.engine import Engine
from podium.runtime.threads import ANSWER_STEP, Asked
from podium.store.memory import MemoryEventStore

ThreadOption = Annotated[
    str | None,
    typer.Option("--thread", "-t", metavar="T", help="Continue this thread (`podium threads`)."),
]


def ask(
    ctx: typer.Context,
    message: Annotated[str, typer.Argument(metavar="MESSAGE", help="What to ask.")],
    thread: ThreadOption = None,
    new_thread: Annotated[
        str | None,
        typer.Option("--new-thread", metavar="T", help="Start a thread with this id."),
    ] = None,
    agent: Annotated[
        str | None,
        typer.Option("--agent", "-a", metavar="A", help="The agent (default: the routing's)."),
    ] = None,
    on_busy: Annotated[
        str | None,
        typer.Option(
            "--on-busy",
            metavar="MODE",
            help="If a run on the thread is live: reject, queue or interrupt "
            "(default: [threads] on_busy, else reject).",
            show_default=False,
        ),
    ] = None,
    model: ModelOption = None,
    agents: AgentsOption = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Choose the run id.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    workspace: HereWorkspaceOption = None,
) -> None:
    """Ask an agent on a thread and show the run live; without --thread a new thread starts.
    The agent sees the thread's earlier messages and answers; --agent names it, else the
    project's [routing] chooses."""
    here = session(ctx, db, as_json, agents=agents, model=model, config=config, workspace=workspace)
    how: dict[str, Any] = {
        "thread": thread,
        "new_thread": new_thread,
        "agent": agent,
        "on_busy": on_busy,
        "run_id": run_id,
    }
    execute(here, _ask(here, message, how))


async def _ask(here: Session, message: str, how: dict[str, Any]) -> int:
    here.workspace = (here.workspace or Path.cwd()).resolve()
    if how["thread"] is not None:
        await _require_thread(here, how["thread"])
    routed = await _rehearse(here, message, how)  # refused here: no store file is created
    async with await here.engine(workspace=here.workspace) as engine:
        asked = await engine.ask(message, **how, routed=routed)
        _say(here, asked, how["thread"])
        state = await follow(here, engine, asked.run_id)
        code = await finish(here, engine, state)
    answer = state.steps[ANSWER_STEP].output if ANSWER_STEP in state.steps else None
    if not here.json and state.status == "succeeded" and answer is not None:
        here.out.print(answer if isinstance(answer, str) else repr(answer), markup=False)
    return code


async def _require_thread(here: Session, thread: str) -> None:
    """Refuse an unknown thread before anything (a store file included) is created."""
    unknown = UsageError(
        f"no thread {thread}; `podium threads` lists them (start a thread of that name with "
        f"--new-thread {thread})"
    )
    try:
        reader = await here.engine("control")
    except StoreUnavailableError as exc:
        if str(exc).startswith("no Podium store at"):  # no store: no thread either
            raise unknown from None
        raise
    async with reader:
        if not await reader.store.list_runs(thread=thread, limit=1):
            raise unknown


async def _rehearse(here: Session, message: str, how: dict[str, Any]) -> dict[str, Any]:
    """Route and check the message on a store in memory that drives nothing: a bad agent,
    model or configuration is refused before the command's store is opened. Returns the
    routing, so a router agent is asked once."""
    memory = MemoryEventStore()
    async with Engine(
        memory,
        mode="control",
        agents_dir=here.agents,
        default_model=here.model,
        config=await here._config(memory, None, here.workspace),
        workspace=here.workspace,
    ) as rehearsal:
        trial = {**how, "thread": None, "run_id": None}
        return (await rehearsal.ask(message, **trial)).routing


def _say(here: Session, asked: Asked, continued: str | None) -> None:
    if asked.new_thread:
        here.note(
            f'thread {asked.thread} (new; continue it with podium ask --thread {asked.thread} "…")'
        )
    else:
        here.note(f"thread {continued}")
    here.note(f"agent {asked.agent} ({_chosen_by(asked.routing)})")
    for live in asked.interrupted:
        here.note(f"interrupted run {live}")
    if asked.waits_for and not asked.interrupted:
        here.note(f"queued: starts when {', '.join(asked.waits_for)} ends")
    here.note(f"run {asked.run_id}")


def _chosen_by(routing: dict[str, Any]) -> str:
    by = routing.get("by")
    if by == "rule":
        return f"routing rule {routing['rule']}: /{routing['pattern']}/"
    if by == "router":
        return f"chosen by the router agent {routing['router']}"
    if by == "request":
        return "--agent"
    if by == "default":
        return "the routing default"
    return "the only agent"
