"""Shared by the stores: numbered migrations, SQL strings, row conversions, append/lease rules."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any, cast

from podium.core.events import Event, encode
from podium.errors import ConcurrencyError, RunExistsError, RunNotFoundError
from podium.store.base import Lease, RunRecord, RunStatus, owner_is_dead

# Queries use `?` placeholders (sqlite3's paramstyle); a psycopg dialect swaps them for `%s`.
# Instants are stored as unix seconds, which round-trip microseconds exactly until the 2200s.

CREATE_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL)"
)
SCHEMA_VERSION = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
RECORD_MIGRATION = "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)"

RUN_COLUMNS = "run_id, workflow_name, status, created_at, updated_at, last_seq, owner, epoch"
INSERT_RUN = (
    "INSERT INTO runs (run_id, workflow_name, status, created_at, updated_at, last_seq, epoch)"
    " VALUES (?, ?, 'pending', ?, ?, 1, 0)"
)
RUN_EXISTS = "SELECT 1 FROM runs WHERE run_id = ?"
RUN_POSITION = "SELECT last_seq, epoch FROM runs WHERE run_id = ?"
GET_RUN = f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?"
LIST_RUNS = f"SELECT {RUN_COLUMNS} FROM runs ORDER BY created_at DESC, run_id DESC LIMIT ?"
LIST_RUNS_BY_STATUS = (
    f"SELECT {RUN_COLUMNS} FROM runs WHERE status IN ({{marks}})"
    " ORDER BY created_at DESC, run_id DESC LIMIT ?"
)
# A run's updated_at is the `at` of its newest event (event time, not wall time): for a finished
# run that is when it finished, which is what prune compares.
UPDATE_RUN_AFTER_APPEND = (
    "UPDATE runs SET last_seq = ?, updated_at = COALESCE(?, updated_at),"
    " status = COALESCE(?, status) WHERE run_id = ?"
)

INSERT_EVENT = "INSERT INTO events (run_id, seq, kind, at, data) VALUES (?, ?, ?, ?, ?)"
READ_EVENTS = "SELECT kind, data, seq FROM events WHERE run_id = ? AND seq > ? ORDER BY seq"

LEASE_STATE = "SELECT owner, epoch, lease_expires_at FROM runs WHERE run_id = ?"
TAKE_LEASE = "UPDATE runs SET owner = ?, epoch = ?, lease_expires_at = ? WHERE run_id = ?"
RENEW_LEASE = "UPDATE runs SET lease_expires_at = ? WHERE run_id = ? AND owner = ? AND epoch = ?"
RELEASE_LEASE = (
    "UPDATE runs SET owner = NULL, lease_expires_at = NULL"
    " WHERE run_id = ? AND owner = ? AND epoch = ?"
)

INSERT_SIGNAL = "INSERT INTO signals (run_id, kind, payload, created_at) VALUES (?, ?, ?, ?)"
PENDING_SIGNALS = (
    "SELECT id, run_id, kind, payload, created_at FROM signals"
    " WHERE run_id = ? AND consumed_at IS NULL ORDER BY id"
)
CONSUME_SIGNAL = (
    "UPDATE signals SET consumed_at = ? WHERE id = ? AND run_id = ? AND consumed_at IS NULL"
)

PRUNABLE_RUNS = (
    "SELECT run_id FROM runs"
    " WHERE status IN ('succeeded', 'failed', 'cancelled') AND updated_at < ?"
)
DELETE_SIGNALS = "DELETE FROM signals WHERE run_id = ?"
DELETE_EVENTS = "DELETE FROM events WHERE run_id = ?"
DELETE_RUN = "DELETE FROM runs WHERE run_id = ?"

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    script: str


def migrations() -> list[Migration]:
    """The packaged migrations (`migrations/NNNN_name.sql`), in the order they apply."""
    found = []
    for entry in resources.files("podium.store").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), entry.name, entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)


def newer_schema_message(where: str, found: int, known: int) -> str:
    return (
        f"the Podium store at {where} was created by a newer Podium (schema {found}, this one "
        f"knows {known}); upgrade podium"
    )


def list_runs_query(status_count: int) -> str:
    if status_count == 0:
        return LIST_RUNS
    return LIST_RUNS_BY_STATUS.format(marks=", ".join("?" * status_count))


def to_instant(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def run_record(row: tuple[Any, ...]) -> RunRecord:
    """A RunRecord from a row selected with RUN_COLUMNS."""
    run_id, workflow_name, status, created_at, updated_at, last_seq, owner, epoch = row
    return RunRecord(
        run_id=run_id,
        workflow_name=workflow_name,
        status=cast(RunStatus, status),
        created_at=to_instant(created_at),
        updated_at=to_instant(updated_at),
        last_seq=last_seq,
        owner=owner,
        epoch=epoch,
    )


# Rules and messages every store applies, the memory store included.


def lease_is_takeable(
    holder: str | None, expires_at: datetime | None, owner: str, now: datetime
) -> bool:
    """Free, expired, ours already, or held by a process on this host that has died."""
    if holder is None or holder == owner or expires_at is None or expires_at < now:
        return True
    return owner_is_dead(holder)


def stale_message(run_id: str, position: tuple[int, int], expected_seq: int, epoch: int) -> str:
    last_seq, current_epoch = position
    return (
        f"run {run_id} is at seq {last_seq} under lease epoch {current_epoch}, not seq "
        f"{expected_seq} epoch {epoch}: another driver wrote to it; re-read the run and decide "
        "again (or stop driving it if the lease was lost)"
    )


def lost_lease_message(lease: Lease, holder: str | None, epoch: int) -> str:
    return (
        f"the lease on run {lease.run_id} (epoch {lease.epoch}) was taken over by "
        f"{holder or 'nobody'} (epoch {epoch}); stop driving this run"
    )


# Group commit: queued writes are checked against the runs' positions, then written in one go.

EventRow = tuple[str, int, str, float, bytes]
Outcome = int | BaseException


@dataclass(frozen=True, slots=True)
class CreateRun:
    run_id: str
    workflow_name: str
    row: EventRow


@dataclass(frozen=True, slots=True)
class AppendEvents:
    run_id: str
    expected_seq: int
    epoch: int
    status: RunStatus | None
    consumed: Sequence[int]
    rows: list[EventRow]


WriteRequest = CreateRun | AppendEvents


def event_row(run_id: str, seq: int, event: Event) -> EventRow:
    return (run_id, seq, event.kind, event.at.timestamp(), encode(event))


@dataclass(slots=True)
class WritePlan:
    """Per request its new last seq or the error refusing it; the rows to write, in order."""

    outcomes: list[Outcome] = field(default_factory=list)
    runs: list[tuple[str, str, float, float]] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    updates: list[tuple[int, float | None, str | None, str]] = field(default_factory=list)
    consumed: list[tuple[float, int, str]] = field(default_factory=list)

    @property
    def writes(self) -> list[tuple[str, list[Any]]]:
        return [
            (INSERT_RUN, self.runs),
            (INSERT_EVENT, self.events),
            (UPDATE_RUN_AFTER_APPEND, self.updates),
            (CONSUME_SIGNAL, self.consumed),
        ]


def plan_writes(
    requests: Sequence[WriteRequest], positions: dict[str, tuple[int, int] | None], now: float
) -> WritePlan:
    """Check each request against `positions` ((last_seq, epoch) per run id, None if absent).

    Accepted requests advance the positions, so later requests in the batch see them; a refused
    request gets its error as its outcome and writes nothing.
    """
    plan = WritePlan()
    for request in requests:
        outcome: Outcome
        try:
            if isinstance(request, CreateRun):
                outcome = _plan_create(plan, request, positions)
            else:
                outcome = _plan_append(plan, request, positions, now)
        except (RunExistsError, RunNotFoundError, ConcurrencyError) as refused:
            outcome = refused
        plan.outcomes.append(outcome)
    return plan


def _plan_create(
    plan: WritePlan, request: CreateRun, positions: dict[str, tuple[int, int] | None]
) -> int:
    if positions.get(request.run_id) is not None:
        raise RunExistsError(request.run_id)
    positions[request.run_id] = (1, 0)
    at = request.row[3]
    plan.runs.append((request.run_id, request.workflow_name, at, at))
    plan.events.append(request.row)
    return 1


def _plan_append(
    plan: WritePlan,
    request: AppendEvents,
    positions: dict[str, tuple[int, int] | None],
    now: float,
) -> int:
    run_id, position = request.run_id, positions.get(request.run_id)
    if position is None:
        raise RunNotFoundError(run_id)
    if position != (request.expected_seq, request.epoch):
        raise ConcurrencyError(stale_message(run_id, position, request.expected_seq, request.epoch))
    last_seq = request.expected_seq + len(request.rows)
    positions[run_id] = (last_seq, request.epoch)
    plan.events.extend(request.rows)
    updated_at = request.rows[-1][3] if request.rows else None
    plan.updates.append((last_seq, updated_at, request.status, run_id))
    plan.consumed.extend((now, signal_id, run_id) for signal_id in request.consumed)
    return last_seq
