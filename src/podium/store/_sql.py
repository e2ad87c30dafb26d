"""Shared by the stores: numbered migrations, SQL strings, row conversions, lease/claim/prune rules.

Queries use `?` placeholders (sqlite3's paramstyle); a psycopg dialect swaps them for `%s`. Every
query is plain SQL a Postgres dialect can run as it is, adding `FOR UPDATE SKIP LOCKED` to the
claim candidates. Instants are stored as unix seconds, which round-trip microseconds exactly until
the 2200s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any, cast

from podium.errors import UsageError
from podium.store.base import (
    TERMINAL_STATUSES,
    ClaimReason,
    Lease,
    RunRecord,
    RunStatus,
    owner_is_dead,
)

CREATE_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL)"
)
SCHEMA_VERSION = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
RECORD_MIGRATION = "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)"

RUN_COLUMNS = (
    "run_id, workflow_name, status, created_at, updated_at, last_seq, owner, epoch, wake_at,"
    " lease_expires_at, thread, queue"
)
INSERT_RUN = (
    "INSERT INTO runs (run_id, workflow_name, status, created_at, updated_at, last_seq, epoch,"
    " owner, lease_expires_at, thread, queue) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?)"
)
# The oldest live run on a thread (create_run(exclusive=True) refuses when there is one).
LIVE_ON_THREAD = (
    "SELECT run_id FROM runs WHERE thread = ? AND status IN ('pending', 'running', 'waiting')"
    " ORDER BY created_at, run_id LIMIT 1"
)
# Threads by their newest run: the partial index runs_by_thread holds only threaded runs.
LIST_THREADS = (
    "SELECT thread, COUNT(*), MAX(created_at) AS newest FROM runs WHERE thread IS NOT NULL"
    " GROUP BY thread ORDER BY newest DESC, thread DESC LIMIT ?"
)
NEWEST_ON_THREAD = (
    f"SELECT {RUN_COLUMNS} FROM runs WHERE thread = ? ORDER BY created_at DESC, run_id DESC LIMIT 1"
)
RUN_EXISTS = "SELECT 1 FROM runs WHERE run_id = ?"
RUN_POSITION = "SELECT last_seq, epoch FROM runs WHERE run_id = ?"
RUN_CURSOR = "SELECT created_at, run_id FROM runs WHERE run_id = ?"
GET_RUN = f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?"
# A run's updated_at is the `at` of its newest event (event time, not wall time): for a finished
# run that is when it finished, which is what prune compares.
UPDATE_RUN_AFTER_APPEND = (
    "UPDATE runs SET last_seq = ?, updated_at = COALESCE(?, updated_at),"
    " status = COALESCE(?, status), wake_at = ? WHERE run_id = ?"
)

# Each event's global position is the next after the highest ever given: the events' own maximum,
# or the floor pruning recorded when it removed the newest (positions are never reused).
_HIGHEST_POSITION = (
    "MAX(COALESCE((SELECT MAX(position) FROM events), 0),"
    " (SELECT last FROM position_floor WHERE id = 1))"
)
INSERT_EVENT = (
    "INSERT INTO events (run_id, seq, kind, at, data, position) VALUES (?, ?, ?, ?, ?,"
    f" {_HIGHEST_POSITION} + 1)"
)
LAST_POSITION = f"SELECT {_HIGHEST_POSITION}"
READ_EVENTS = "SELECT kind, at, data, seq FROM events WHERE run_id = ? AND seq > ? ORDER BY seq"
READ_ALL_EVENTS = (
    "SELECT kind, at, data, run_id, seq, position FROM events WHERE position > ?"
    " ORDER BY position LIMIT ?"
)
KEEP_POSITION_FLOOR = (
    "UPDATE position_floor SET last = MAX(last, COALESCE((SELECT MAX(position) FROM events), 0))"
    " WHERE id = 1"
)

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

DELETE_SIGNALS = "DELETE FROM signals WHERE run_id = ?"
DELETE_EVENTS = "DELETE FROM events WHERE run_id = ?"
DELETE_RUN = "DELETE FROM runs WHERE run_id = ?"

# -- claim ------------------------------------------------------------------------------------
# Candidates come from three index lookups (runs_by_status, runs_by_wake, signals_pending), then
# the full condition is checked on the run's row. Every `?` below is the store's `now`, except the
# ones named in claim_free_params / claim_local_params.

_TERMINAL = "('succeeded', 'failed', 'cancelled')"
_SIGNALLED = "EXISTS (SELECT 1 FROM signals s WHERE s.run_id = r.run_id AND s.consumed_at IS NULL)"
_DUE = f"(r.wake_at <= ? AND r.status NOT IN {_TERMINAL})"
_CLAIM_SELECT = (
    f"SELECT r.run_id, r.status, r.owner, r.epoch, {_SIGNALLED}, {_DUE},"
    f" CASE WHEN {_DUE} THEN r.wake_at ELSE r.created_at END AS since, r.created_at"
    " FROM runs r WHERE r.run_id IN ("
    "SELECT run_id FROM runs WHERE status IN ('pending', 'running')"
    " UNION SELECT run_id FROM runs WHERE wake_at <= ?"
    " UNION SELECT run_id FROM signals WHERE consumed_at IS NULL)"
    f" AND (r.status IN ('pending', 'running') OR {_DUE} OR {_SIGNALLED})"
)
_LEASE_FREE = "(r.owner IS NULL OR r.lease_expires_at IS NULL OR r.lease_expires_at < ?)"
_CLAIM_ORDER = " ORDER BY since, r.created_at, r.run_id"


def claim_free(on_queues: str) -> str:
    """Free or expired leases: the database decides, so the query can stop at `limit`.
    `on_queues` is the backend's `AND r.queue …` condition with one `?`, or '' for any queue."""
    return f"{_CLAIM_SELECT} AND {_LEASE_FREE}{on_queues}{_CLAIM_ORDER} LIMIT ?"


def claim_local(on_queues: str) -> str:
    """Live leases of processes on this host (not our own): the caller keeps those whose
    process died."""
    return (
        f"{_CLAIM_SELECT} AND NOT {_LEASE_FREE} AND r.owner LIKE ? AND r.owner <> ?"
        f"{on_queues}{_CLAIM_ORDER}"
    )


def claim_free_params(now: float, limit: int, queues: tuple[Any, ...] = ()) -> tuple[Any, ...]:
    """`queues`: () for any queue, else the one parameter of the backend's queue condition."""
    return (now, now, now, now, now, *queues, limit)


def claim_local_params(
    now: float, host_prefix: str, owner: str, queues: tuple[Any, ...] = ()
) -> tuple[Any, ...]:
    pattern = host_prefix.replace("%", "_") + "%"  # `_` matches anything: owner_is_dead decides
    return (now, now, now, now, now, pattern, owner, *queues)


@dataclass(frozen=True, slots=True)
class ClaimCandidate:
    run_id: str
    reason: ClaimReason
    epoch: int
    order: tuple[float, float, str]
    holder: str | None  # the owner column: set when the last driver did not give the run back


def claim_candidates(
    free: Sequence[tuple[Any, ...]], local: Sequence[tuple[Any, ...]], limit: int
) -> list[ClaimCandidate]:
    """Rows of CLAIM_FREE and CLAIM_LOCAL → the `limit` most overdue runs that may be taken."""
    chosen = [_candidate(row) for row in free]
    chosen += [_candidate(row) for row in local if owner_is_dead(row[2])]
    chosen.sort(key=lambda c: c.order)
    return chosen[: max(limit, 0)]


def _candidate(row: tuple[Any, ...]) -> ClaimCandidate:
    run_id, status, holder, epoch, signalled, due, since, created_at = row
    reason = claim_reason(status, due=bool(due), signalled=bool(signalled))
    order = (since, created_at, run_id)
    return ClaimCandidate(run_id, cast(ClaimReason, reason), epoch, order, holder)


def claim_reason(status: str, *, due: bool, signalled: bool) -> ClaimReason | None:
    """Why a run whose lease is free is runnable, or None if it is not (see `Claim`)."""
    if status == "running":
        return "orphaned"
    if signalled:
        return "signalled"
    if due and status not in TERMINAL_STATUSES:
        return "due"
    if status == "pending":
        return "pending"
    return None


# -- list_runs and prune -----------------------------------------------------------------------


def list_runs_query(
    statuses: Sequence[str] | None,
    workflow_name: str | None,
    cursor: tuple[float, str] | None,
    limit: int,
    thread: str | None = None,
) -> tuple[str, tuple[Any, ...]]:
    """The page query and its parameters; `cursor` is the (created_at, run_id) to continue after."""
    where: list[str] = []
    params: list[Any] = []
    if thread is not None:
        where.append("thread = ?")
        params.append(thread)
    if statuses is not None:
        where.append(f"status IN ({', '.join('?' * len(statuses))})")
        params += statuses
    if workflow_name is not None:
        where.append("workflow_name = ?")
        params.append(workflow_name)
    if cursor is not None:
        where.append("(created_at < ? OR (created_at = ? AND run_id < ?))")
        params += [cursor[0], cursor[0], cursor[1]]
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    order = " ORDER BY created_at DESC, run_id DESC LIMIT ?"
    return f"SELECT {RUN_COLUMNS} FROM runs{clause}{order}", (*params, max(limit, 0))


def prune_query(statuses: Sequence[str], cutoff: float | None) -> tuple[str, tuple[Any, ...]]:
    """Finished runs of `statuses` (updated before `cutoff`) without unconsumed signals; the
    caller drops the ones whose lease is live."""
    where = f"status IN ({', '.join('?' * len(statuses))}) AND NOT {_SIGNALLED}"
    params: tuple[Any, ...] = tuple(statuses)
    if cutoff is not None:
        where += " AND updated_at < ?"
        params += (cutoff,)
    query = f"SELECT {RUN_COLUMNS} FROM runs r WHERE {where} ORDER BY created_at DESC, run_id DESC"
    return query, params


def check_prunable(statuses: Sequence[str]) -> list[str]:
    unfinished = sorted(set(statuses) - TERMINAL_STATUSES)
    if unfinished:
        raise UsageError(
            f"only finished runs can be pruned, not {', '.join(unfinished)}; pass statuses "
            "among succeeded, failed and cancelled (cancel a run first to prune it)"
        )
    return list(dict.fromkeys(statuses))


# -- migrations ------------------------------------------------------------------------------

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    script: str


def migrations(dialect: str) -> list[Migration]:
    """The packaged migrations of `dialect` (`migrations/<dialect>/NNNN_name.sql`), in order."""
    folder = resources.files("podium.store").joinpath("migrations", dialect)
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), entry.name, entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)


def newer_schema_message(where: str, found: int, known: int) -> str:
    return (
        f"the Podium store at {where} was created by a newer Podium (schema {found}, this one "
        f"knows {known}); upgrade podium"
    )


# -- rows and rules every store applies, the memory store included ----------------------------


def to_instant(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def maybe_instant(seconds: float | None) -> datetime | None:
    return None if seconds is None else to_instant(seconds)


def run_record(row: tuple[Any, ...]) -> RunRecord:
    """A RunRecord from a row selected with RUN_COLUMNS."""
    run_id, workflow_name, status, created_at, updated_at, last_seq, owner, epoch = row[:8]
    return RunRecord(
        run_id=run_id,
        workflow_name=workflow_name,
        status=cast(RunStatus, status),
        created_at=to_instant(created_at),
        updated_at=to_instant(updated_at),
        last_seq=last_seq,
        owner=owner,
        epoch=epoch,
        wake_at=maybe_instant(row[8]),
        lease_expires_at=maybe_instant(row[9]),
        thread=row[10],
        queue=row[11],
    )


def lease_is_free(holder: str | None, expires_at: datetime | None, now: datetime) -> bool:
    """Nobody live holds it: free, released, expired, or held by a dead process on this host."""
    if holder is None or expires_at is None or expires_at < now:
        return True
    return owner_is_dead(holder)


def lease_is_takeable(
    holder: str | None, expires_at: datetime | None, owner: str, now: datetime
) -> bool:
    """Free (see lease_is_free) or ours already."""
    return holder == owner or lease_is_free(holder, expires_at, now)


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
