"""`podium logs RUN [STEP] [--follow]`: what a run's steps wrote, as the store keeps it, one step
or all of them interleaved in the order it was recorded."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.text import Text

from podium import views
from podium.cli._session import DbOption, JsonOption, Session, execute, session
from podium.cli.runref import RunRef, resolve_run
from podium.core import events as ev
from podium.core.state import require_step

STREAM_STYLES = {"stderr": "yellow", "error": "red", "tool": "cyan", "progress": "dim"}
STEP_ENDS = (ev.StepSucceeded, ev.StepFailed, ev.StepSkipped, ev.StepCancelled)
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
    """Print what steps wrote, each line prefixed by its step: a shell step's stdout (its output,
    as stored, so capped like it) and the end of its stderr (the last 2,000 characters, or, when
    it failed, the end its error quotes: a failed step's stdout is not kept); an agent's reply
    text, one block per model call, and the tools it called; progress reports; errors. A shell
    step's lines appear when it finishes, an agent's after each model call: live token streams
    are shown only by the `podium run` that drives the run.
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
        async for stored in engine.events(run_id, follow=follow):
            for entry in views.log_entries(stored):
                if step_id is None or entry["step_id"] == step_id:
                    _print(here, entry, None if step_id else width)
            if follow and _ends(stored.event, step_id):
                break
    return 0


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
