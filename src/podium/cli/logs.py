"""`podium logs RUN [STEP] [--follow]`: what a run's steps wrote, one step or all of them
interleaved in the order it was recorded: the run's events, and the shell steps' log files."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import typer
from rich.text import Text

from podium.aio import cancel_and_wait
from podium.cli._session import DbOption, JsonOption, Session, execute, session
from podium.cli.runref import RunRef, resolve_run
from podium.core import events as ev
from podium.core.state import require_step
from podium.runtime.engine import Engine
from podium.runtime.logs import LogTails
from podium.store.base import StoredEvent

STREAM_STYLES = {"stderr": "yellow", "error": "red", "tool": "cyan", "progress": "dim"}
STEP_ENDS = (ev.StepSucceeded, ev.StepFailed, ev.StepSkipped, ev.StepCancelled)
POLL_SECONDS = 0.25
MAX_PREFIX = 24


def logs(
    ctx: typer.Context,
    run_id: RunRef,
    step_id: Annotated[
        str | None,
        typer.Argument(metavar="STEP", help="Only this step's logs.", show_default=False),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the run (or STEP) ends.")
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print what steps wrote, each line prefixed by its step: a shell step's stdout and stderr
    line by line as it wrote them (from its log under <workspace>/.podium/logs/RUN/, capped at 8
    times the output cap; where that file is not on this machine, the stored output and the last
    2,000 characters of stderr); an agent's reply text, one block per model call, and the tools
    it called; progress reports; errors. With --follow, a running shell step's lines appear as
    it writes them, an agent's after each model call (live token streams are shown only by the
    `podium run` that drives the run).
    """
    here = session(ctx, db, as_json)
    execute(here, _logs(here, run_id, step_id, follow))


async def _logs(here: Session, ref: str, step_id: str | None, follow: bool) -> int:
    async with await here.engine("control") as engine:
        run_id = await resolve_run(engine.store, ref)
        state = await engine.state(run_id)
        width = min(max((len(s) for s in state.steps), default=0), MAX_PREFIX)
        if step_id is not None and require_step(state, step_id).terminal:
            follow = False  # it has ended: print what it wrote
        tails = LogTails(state.workspace_path, run_id)

        def show(entry: dict[str, Any]) -> None:
            if step_id is None or entry["step_id"] == step_id:
                _print(here, entry, None if step_id else width)

        events: asyncio.Queue[StoredEvent | None] = asyncio.Queue()
        feeder = asyncio.create_task(_feed(engine, run_id, follow, events))
        try:
            while True:
                try:
                    stored = await asyncio.wait_for(events.get(), POLL_SECONDS)
                except TimeoutError:
                    tails.poll(show)  # --follow: what running shell steps wrote meanwhile
                    continue
                if stored is None:
                    break
                tails.on_event(stored, show)
                if follow and _ends(stored.event, step_id):
                    break
            tails.poll(show)  # what steps still running have written so far
        finally:
            await cancel_and_wait(feeder)
    return 0


async def _feed(
    engine: Engine, run_id: str, follow: bool, into: asyncio.Queue[StoredEvent | None]
) -> None:
    async for stored in engine.events(run_id, follow=follow):
        into.put_nowait(stored)
    into.put_nowait(None)


def _ends(event: ev.Event, step_id: str | None) -> bool:
    """The followed step settled (a retry's failure does not end it)."""
    return step_id is not None and isinstance(event, STEP_ENDS) and event.step_id == step_id


def _print(here: Session, entry: dict[str, Any], width: int | None) -> None:
    if here.json:
        sys.stdout.write(json.dumps(entry, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    stream = entry["stream"]
    tag = "" if stream in ("stdout", "text") else f"[{stream}] "
    prefix = "" if width is None else f"{entry['step_id']:<{width}} │ "
    for line in entry["text"].splitlines() or [""]:
        text = Text(prefix, style="dim")
        text.append(tag + line, style=STREAM_STYLES.get(stream, ""))
        here.out.print(text, soft_wrap=True, highlight=False)
    here.out.file.flush()
