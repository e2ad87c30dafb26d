"""`podium threads [T]`: the conversations in the store, or one thread's runs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from podium import views
from podium.cli import render
from podium.cli._session import DbOption, JsonOption, Session, execute, session
from podium.runtime.threads import thread_runs


def threads(
    ctx: typer.Context,
    thread: Annotated[
        str | None,
        typer.Argument(metavar="[T]", help="List this thread's runs instead.", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List threads, the most recently asked first: runs, status and last message."""
    here = session(ctx, db, as_json)
    execute(here, _threads(here, limit) if thread is None else _thread(here, thread, limit))


async def _threads(here: Session, limit: int) -> int:
    async with await here.engine("control") as engine:
        found = await engine.threads(limit=limit)
    if here.json:
        here.emit([views.thread_document(t) for t in found])
        return 0
    if not found:
        here.note('no threads; start one with podium ask "…"')
        return 0
    table = Table(show_edge=False, pad_edge=False)
    for name in ("thread", "runs", "status", "last message", "updated"):
        table.add_column(name, no_wrap=name != "last message")
    for t in found:
        message = render.shorten(t.last_message or "")
        table.add_row(
            t.thread, str(t.runs), render.styled(t.status), message, render.stamp(t.updated_at)
        )
    here.out.print(table)
    return 0


async def _thread(here: Session, thread: str, limit: int) -> int:
    async with await here.engine("control") as engine:
        records = await thread_runs(engine.store, thread, limit=limit)
        states = {r.run_id: await engine.state(r.run_id) for r in records}
    rows = [views.thread_run_document(r, states[r.run_id]) for r in records]
    if here.json:
        here.emit(rows)
        return 0
    table = Table(show_edge=False, pad_edge=False)
    for name in ("run", "status", "agent", "message", "created"):
        table.add_column(name, no_wrap=name != "message")
    for row, record in zip(rows, records, strict=True):
        message = render.shorten(row["message"] or "")
        table.add_row(
            row["run_id"],
            render.styled(row["status"]),
            row["agent"] or "",
            message,
            render.stamp(record.created_at),
        )
    here.out.print(table)
    return 0
