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
    RunArg,
    Session,
    StatusName,
    execute,
    session,
)
from podium.store.base import RunStatus


def runs(
    ctx: typer.Context,
    status: Annotated[StatusName | None, typer.Option("--status", help="Only this status.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first."""
    here = session(ctx, db, as_json)
    execute(here, _runs(here, status, limit))


async def _runs(here: Session, status: StatusName | None, limit: int) -> int:
    statuses: list[RunStatus] | None = [status.value] if status is not None else None
    async with await here.engine("control") as engine:
        records = await engine.store.list_runs(statuses=statuses, limit=limit)
    if here.json:
        here.emit([views.run_document(r) for r in records])
    elif records:
        here.out.print(render.runs_table(records))
    else:
        here.note("no runs")
    return 0


def show(
    ctx: typer.Context, run_id: RunArg, db: DbOption = None, as_json: JsonOption = False
) -> None:
    """Show a run: its status, and each step's attempts, times, output or error."""
    here = session(ctx, db, as_json)
    execute(here, _show(here, run_id))


async def _show(here: Session, run_id: str) -> int:
    async with await here.engine("control") as engine:
        state = await engine.state(run_id)
        record = await engine.store.get_run(run_id)
    if here.json:
        here.emit(views.show_document(state, record))
    else:
        here.out.print(render.show_renderable(state, record))
    return 0


def events(
    ctx: typer.Context,
    run_id: RunArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream until it ends.")] = False,
    after: Annotated[int, typer.Option("--after", metavar="SEQ", min=0, help="Skip to here.")] = 0,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print a run's events, one per line (with --json, one JSON object per line)."""
    here = session(ctx, db, as_json)
    execute(here, _events(here, run_id, follow, after))


async def _events(here: Session, run_id: str, follow: bool, after: int) -> int:
    async with await here.engine("control") as engine:
        async for stored in engine.events(run_id, after_seq=after, follow=follow):
            if here.json:
                line = json.dumps(views.event_document(stored), ensure_ascii=False)
            else:
                line = render.event_line(stored)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    return 0
