"""Deleting finished runs: their events and signals in the store, and the bookkeeping they left
in their workspaces (process records, shell logs). A run that is live or parked is never pruned:
the store keeps any run that is unfinished, holds a live lease or has signals waiting. The CLI's
`podium prune` and the HTTP API's prune share this."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import get_args

from podium.core.events import RunCreated
from podium.errors import PodiumError, UsageError
from podium.steps.procs import forget_run
from podium.steps.steplog import forget_run_logs
from podium.store.base import TERMINAL_STATUSES, EventStore, RunRecord, RunStatus

DEFAULT_AGE = "30d"
DEFAULT_STATUSES = "succeeded,failed,cancelled"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


@dataclass(frozen=True, slots=True)
class Pruned:
    """The runs removed (or, dry, that would be) and their workspace files."""

    runs: list[RunRecord]
    files: list[Path]


def parse_age(text: str, *, name: str = "--older-than") -> timedelta:
    """`30d` -> 30 days; UsageError for anything but a whole number and one of s, m, h, d, w."""
    match = _DURATION.match(text)
    if match is None:
        raise UsageError(
            f"{name} {text!r} is not a duration; write a whole number and a unit: "
            "45s, 90m, 12h, 30d or 2w"
        )
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


def parse_statuses(words: Sequence[str], *, name: str = "--status") -> list[RunStatus]:
    """The finished statuses named; UsageError for an unknown or unfinished one."""
    words = [word.strip() for word in words if word.strip()]
    known: tuple[RunStatus, ...] = get_args(RunStatus)
    unknown = [w for w in words if w not in known]
    unfinished = [str(w) for w in words if w in known and w not in TERMINAL_STATUSES]
    if not words or unknown or unfinished:
        wrong = ", ".join(unknown + unfinished) or "nothing"
        what = "unfinished runs (live or parked) are never pruned" if unfinished else "unknown"
        raise UsageError(f"{name} {wrong}: {what}; give finished statuses among {DEFAULT_STATUSES}")
    return [w for w in known if w in words]


async def prune_runs(
    store: EventStore, *, cutoff: datetime, statuses: Sequence[RunStatus], dry_run: bool
) -> Pruned:
    """Prune the finished runs of `statuses` last updated before `cutoff`, and their files."""
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
    return Pruned(removed, files)


async def _workspace(store: EventStore, run_id: str) -> Path | None:
    """The workspace the run was created with (its first event says), if it can still be read."""
    try:
        first = (await store.read(run_id))[:1]
    except PodiumError:  # pruned by someone else meanwhile
        return None
    created = first[0].event if first else None
    return Path(created.workspace) if isinstance(created, RunCreated) else None
