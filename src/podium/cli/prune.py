"""`podium prune`: delete finished runs (their events and signals) and the bookkeeping they left
in their workspaces. A run that is live or parked is never pruned: the store keeps any run that
is unfinished, holds a live lease or has signals waiting."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from podium import views
from podium.cli._session import DbOption, JsonOption, Session, execute, session
from podium.runtime.pruning import (
    DEFAULT_AGE,
    DEFAULT_STATUSES,
    parse_age,
    parse_statuses,
    prune_runs,
)
from podium.store.base import RunRecord


def prune(
    ctx: typer.Context,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="Only runs last updated longer ago than this: 45s, 90m, 12h, 30d, 2w.",
        ),
    ] = DEFAULT_AGE,
    status: Annotated[
        str,
        typer.Option("--status", metavar="S,S", help="Only runs that ended so (comma-separated)."),
    ] = DEFAULT_STATUSES,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be removed; remove nothing.")
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete finished runs, their events and signals, and their bookkeeping in the workspace."""
    here = session(ctx, db, as_json)
    execute(here, _prune(here, older_than, status, dry_run))


async def _prune(here: Session, older_than: str, status: str, dry_run: bool) -> int:
    cutoff = datetime.now(UTC) - parse_age(older_than)
    statuses = parse_statuses(status.split(","))  # both checked before the store is opened
    async with await here.engine("control") as engine:
        pruned = await prune_runs(engine.store, cutoff=cutoff, statuses=statuses, dry_run=dry_run)
    _report(here, pruned.runs, pruned.files, cutoff, dry_run=dry_run)
    return 0


def _report(
    here: Session, removed: list[RunRecord], files: list[Path], cutoff: datetime, *, dry_run: bool
) -> None:
    verb = "would remove" if dry_run else "removed"
    before = cutoff.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    if here.json:
        here.emit([views.run_document(r) for r in removed])
    if not removed:
        here.note(f"nothing to prune: no finished run was last updated before {before}")
        return
    count = f"{len(removed)} run{'s' if len(removed) != 1 else ''}"
    ids = ", ".join(r.run_id for r in removed)
    here.note(f"{verb} {count} last updated before {before}: {ids}")
    if files:
        here.note(f"{verb} {len(files)} path(s) under <workspace>/.podium/procs/ and logs/")
