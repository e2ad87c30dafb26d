"""`podium logs RUN [STEP] [--follow]`: what a run's steps wrote, one step or all of them
interleaved in the order it was recorded: the run's events, and the shell steps' log files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from podium import views
from podium.cli._session import DbOption, JsonOption, Session, execute, session
from podium.cli.runref import RunRef, resolve_run
from podium.core import events as ev
from podium.core.state import require_step
from podium.runtime.engine import Engine
from podium.steps import steplog
from podium.store.base import StoredEvent

STREAM_STYLES = {"stderr": "yellow", "error": "red", "tool": "cyan", "progress": "dim"}
STEP_ENDS = (ev.StepSucceeded, ev.StepFailed, ev.StepSkipped, ev.StepCancelled)
ATTEMPT_ENDS = (ev.StepSucceeded, ev.StepFailed, ev.StepRetrying, ev.StepCancelled)
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
        tails = _Tails(state.workspace_path, run_id)

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
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
    return 0


async def _feed(
    engine: Engine, run_id: str, follow: bool, into: asyncio.Queue[StoredEvent | None]
) -> None:
    async for stored in engine.events(run_id, follow=follow):
        into.put_nowait(stored)
    into.put_nowait(None)


class _Tails:
    """The run's log entries in order: from its events, and for a shell step's attempt the
    lines it wrote (its log file, `podium.steps.steplog`) instead of the stored output and the
    stored end of stderr, when the file is here (the run ran on this machine, not pruned)."""

    def __init__(self, workspace: Path, run_id: str) -> None:
        self._workspace, self._run_id = workspace, run_id
        self._running: dict[str, int] = {}  # step -> attempt
        self._offsets: dict[tuple[str, int], int] = {}

    def on_event(self, stored: StoredEvent, show: Callable[[dict[str, Any]], None]) -> None:
        e = stored.event
        if isinstance(e, ev.StepStarted):
            self._running[e.step_id] = e.attempt
        step = getattr(e, "step_id", None)
        logged = False
        if isinstance(e, ATTEMPT_ENDS) and step in self._running:
            logged = self._drain(step, self._running.pop(step), show)
        for entry in views.log_entries(stored):
            if not (logged and entry["stream"] in ("stdout", "stderr")):
                show(entry)

    def poll(self, show: Callable[[dict[str, Any]], None]) -> None:
        for step, attempt in list(self._running.items()):
            self._drain(step, attempt, show)

    def _drain(self, step: str, attempt: int, show: Callable[[dict[str, Any]], None]) -> bool:
        """Show the attempt's new lines; True when it has a log file."""
        path = steplog.log_path(self._workspace, self._run_id, step, attempt)
        key = (step, attempt)
        if key not in self._offsets and not path.exists():
            return False
        records, self._offsets[key] = steplog.read_records(path, self._offsets.get(key, 0))
        for record in records:
            show(views.log_line_entry(self._run_id, step, attempt, record))
        return True


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
