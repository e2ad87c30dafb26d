"""`podium prune`: delete finished runs (their events and signals) and the bookkeeping they left
in their workspaces. A run that is live or parked is never pruned: the store keeps any run that
is unfinished, holds a live lease or has signals waiting."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, get_args

import typer

from podium import views
from podium.cli._session import DbOption, JsonOption, Session, execute, session
from podium.core.events import RunCreated
from podium.errors import PodiumError, UsageError
from podium.steps.procs import forget_run
from podium.steps.steplog import forget_run_logs
from podium.store.base import TERMINAL_STATUSES, EventStore, RunRecord, RunStatus

DEFAULT_AGE = "30d"
DEFAULT_STATUSES = "succeeded,failed,cancelled"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


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


def parse_age(text: str) -> timedelta:
    """`30d` -> 30 days; UsageError for anything but a whole number and one of s, m, h, d, w."""
    match = _DURATION.match(text)
    if match is None:
        raise UsageError(
            f"--older-than {text!r} is not a duration; write a whole number and a unit: "
            "45s, 90m, 12h, 30d or 2w"
        )
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


def parse_statuses(text: str) -> list[RunStatus]:
    """`succeeded,failed` -> the statuses; UsageError for an unknown or unfinished one."""
    words = [word.strip() for word in text.split(",") if word.strip()]
    known: tuple[RunStatus, ...] = get_args(RunStatus)
    unknown = [w for w in words if w not in known]
    unfinished = [str(w) for w in words if w in known and w not in TERMINAL_STATUSES]
    if not words or unknown or unfinished:
        wrong = ", ".join(unknown + unfinished) or "nothing"
        what = "unfinished runs (live or parked) are never pruned" if unfinished else "unknown"
        raise UsageError(
            f"--status {wrong}: {what}; give finished statuses among {DEFAULT_STATUSES}"
        )
    return [w for w in known if w in words]


async def _prune(here: Session, older_than: str, status: str, dry_run: bool) -> int:
    cutoff = datetime.now(UTC) - parse_age(older_than)
    statuses = parse_statuses(status)  # both checked before the store is opened
    async with await here.engine("control") as engine:
        store = engine.store
        found = await store.prune(finished_before=cutoff, statuses=statuses, dry_run=True)
        workspaces = {r.run_id: await _workspace(store, r.run_id) for r in found}
        removed = found
        if not dry_run and found:
            removed = await store.prune(finished_before=cutoff, statuses=statuses)
    files = [
        path
        for record in removed
        if (workspace := workspaces.get(record.run_id)) is not None
        for forget in (forget_run, forget_run_logs)
        for path in forget(workspace, record.run_id, dry_run=dry_run)
    ]
    _report(here, removed, files, cutoff, dry_run=dry_run)
    return 0


async def _workspace(store: EventStore, run_id: str) -> Path | None:
    """The workspace the run was created with (its first event says), if it can still be read."""
    try:
        first = (await store.read(run_id))[:1]
    except PodiumError:  # pruned by someone else meanwhile
        return None
    created = first[0].event if first else None
    return Path(created.workspace) if isinstance(created, RunCreated) else None


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
