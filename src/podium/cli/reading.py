"""`podium runs`, `podium show` and `podium events`: read what the store recorded."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from podium import views
from podium.cli import render
from podium.cli._session import (
    DbOption,
    JsonOption,
    Session,
    StatusName,
    execute,
    session,
)
from podium.cli.runref import RunRef, resolve_run
from podium.cli.stepview import step_renderable
from podium.cli.timeline import timeline_renderable
from podium.core.fold import replay
from podium.errors import UsageError
from podium.stepviews import step_detail_document
from podium.store.base import RunStatus

StepOption = Annotated[
    str | None,
    typer.Argument(
        metavar="STEP",
        help="One step to show in full (a plan's child: PLAN.ID).",
        show_default=False,
    ),
]


def runs(
    ctx: typer.Context,
    status: Annotated[StatusName | None, typer.Option("--status", help="Only this status.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first, with each one's duration, step counts and cost."""
    here = session(ctx, db, as_json)
    execute(here, _runs(here, status, limit))


async def _runs(here: Session, status: StatusName | None, limit: int) -> int:
    statuses: list[RunStatus] | None = [status.value] if status is not None else None
    async with await here.engine("control") as engine:
        records = await engine.store.list_runs(statuses=statuses, limit=limit)
        states = {r.run_id: await engine.state(r.run_id) for r in records}
    if here.json:
        here.emit([views.run_document(r, states[r.run_id]) for r in records])
    elif records:
        here.out.print(render.runs_table(records, states))
    else:
        here.note("no runs")
    return 0


def show(
    ctx: typer.Context,
    run_id: RunRef,
    step_id: StepOption = None,
    timeline: Annotated[
        bool, typer.Option("--timeline", help="Draw the steps as a Gantt chart of their times.")
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a run (its status, each step's attempts, times, output or error), or one STEP in
    full: every attempt, its rendered input, its whole output or error, model and tool calls.
    """
    here = session(ctx, db, as_json)
    execute(here, _show(here, run_id, step_id, timeline))


async def _show(here: Session, ref: str, step_id: str | None, timeline: bool) -> int:
    if timeline and (step_id is not None or here.json):
        raise UsageError("--timeline draws the whole run as text: give it no STEP and no --json")
    async with await here.engine("control") as engine:
        run_id = await resolve_run(engine.store, ref)
        stored = await engine.store.read(run_id)
        record = await engine.store.get_run(run_id)
    state = replay(e.event for e in stored)
    if step_id is not None:
        doc = step_detail_document(state, step_id, stored)
        if here.json:
            here.emit(doc)
        else:
            here.out.print(step_renderable(doc))
    elif here.json:
        here.emit(views.show_document(state, record))
    elif timeline:
        here.out.print(render.show_header(state, record))
        here.out.print(timeline_renderable(state))
    else:
        here.out.print(render.show_renderable(state, record))
    return 0


def events(
    ctx: typer.Context,
    run_id: RunRef,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream until it ends.")] = False,
    after: Annotated[int, typer.Option("--after", metavar="SEQ", min=0, help="Skip to here.")] = 0,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a run's events, one per line (with --json, one JSON object per line)."""
    here = session(ctx, db, as_json)
    execute(here, _events(here, run_id, follow, after))


async def _events(here: Session, ref: str, follow: bool, after: int) -> int:
    async with await here.engine("control") as engine:
        run_id = await resolve_run(engine.store, ref)
        async for stored in engine.events(run_id, after_seq=after, follow=follow):
            if here.json:
                line = json.dumps(views.event_document(stored), ensure_ascii=False)
            else:
                line = render.event_line(stored)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    return 0
