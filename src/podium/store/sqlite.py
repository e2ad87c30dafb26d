"""The SQLite event store: one file in WAL mode, one worker thread, group-committed appends."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, cast

from podium.core.events import Event, RunCreated, decode_many
from podium.errors import ConcurrencyError, LeaseHeldError, RunNotFoundError, StoreError
from podium.store import _batch as batch
from podium.store import _sql as sql
from podium.store._changes import events_or_wait
from podium.store._sqlite_commit import GroupCommit, Queued
from podium.store._sqlite_open import BusyBudget, busy_error, connect, unavailable
from podium.store._sqlite_watch import DataVersionWatch
from podium.store._sqlite_worker import Worker
from podium.store.base import (
    Claim,
    Lease,
    RunRecord,
    RunStatus,
    Signal,
    SignalKind,
    StoredEvent,
    ThreadRecord,
    local_owner_prefix,
    taken_from,
)

_ON_QUEUES = " AND r.queue IN (SELECT value FROM json_each(?))"  # one JSON array of names
# (any queue, some queues) -> the claim queries, built once
_CLAIM_FREE = (sql.claim_free(""), sql.claim_free(_ON_QUEUES))
_CLAIM_LOCAL = (sql.claim_local(""), sql.claim_local(_ON_QUEUES))
_WRITE_NOTHING = "UPDATE runs SET epoch = epoch WHERE 0"  # takes the write lock, changes nothing
_CANNOT_WRITE = "this process cannot write to it, so it cannot drive or steer runs"
_NOT_CREATED = "nothing was recorded and no run was created"
_NOT_APPENDED = (
    "these events were not recorded; the run keeps its last recorded state and `podium resume` "
    "continues it"
)


class SQLiteEventStore:
    """Open with `await SQLiteEventStore.open(path)`; every database call runs on one worker thread.

    Concurrent `create_run`/`append` calls are queued and committed together: the worker writes
    everything queued in one `BEGIN IMMEDIATE … COMMIT`, refusing (as values) the requests whose
    run position or epoch does not match, so many runs cost one fsync per turn, not one each.

    While other processes hold the write lock, calls retry with jittered backoff for the busy
    budget (`busy_seconds`, else $PODIUM_SQLITE_BUSY_SECONDS, else 30 s) and then raise a
    StoreUnavailableError naming it: opening, `create_run`, reads, signals, claims and prunes.
    Writes to a run that exists (appends and its lease) keep trying ten budgets, since giving up
    there would lose a run's progress. The store's clock is this host's wall clock.
    Followers' waits (`wait_for_events`, `wait_for_change`) notice another process's commit
    within about 25 ms (see `_sqlite_watch`), this store's own at once.
    """

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        executor: ThreadPoolExecutor,
        watch: DataVersionWatch,
        budget: BusyBudget,
    ) -> None:
        self._path = path
        self._watch = watch
        self._loop = asyncio.get_running_loop()
        self._db = Worker(path, conn, executor, budget, self._announce)
        self._conn = conn
        self._group = GroupCommit(self._commit_inline, self._commit_on_worker, self._busy_error)

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str], *, busy_seconds: float | None = None, create: bool = True
    ) -> SQLiteEventStore:
        """Open (creating it and its folder if needed) and migrate the store file at `path`.
        With `create=False` it must be a current Podium store: nothing is created or migrated.
        Another application's SQLite file is refused either way, untouched."""
        budget = BusyBudget.resolve(busy_seconds)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="podium-sqlite")
        loop = asyncio.get_running_loop()
        opening = partial(connect, path, budget, create=create)
        try:
            where, conn = await loop.run_in_executor(executor, opening)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        try:
            watch = await loop.run_in_executor(executor, DataVersionWatch, where)
        except BaseException as exc:
            await loop.run_in_executor(executor, conn.close)
            executor.shutdown(wait=False)
            if isinstance(exc, sqlite3.Error):
                raise unavailable(where, exc, budget) from exc
            raise
        return cls(where, conn, executor, watch, budget)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def commits(self) -> int:
        """Write transactions committed so far (benchmarks and tests read it)."""
        return self._db.commits

    async def now(self) -> datetime:
        return datetime.now(UTC)

    # -- writes that are group-committed ------------------------------------------------------

    async def create_run(
        self,
        created: RunCreated,
        *,
        workflow_name: str,
        lease_owner: str | None = None,
        ttl_seconds: float = 0.0,
        then: Sequence[Event] = (),
        exclusive: bool = False,
    ) -> Lease | None:
        expires_at = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
        expires = expires_at.timestamp() if lease_owner is not None else None
        request = batch.create_request(
            created,
            then,
            workflow_name=workflow_name,
            owner=lease_owner,
            lease_expires_at=expires,
            exclusive=exclusive,
        )
        await self._submit(request, self._db.budget.seconds)
        if lease_owner is None:
            return None
        return Lease(created.run_id, lease_owner, 1, expires_at)

    async def append(
        self,
        run_id: str,
        events: Sequence[Event],
        *,
        expected_seq: int,
        epoch: int,
        status: RunStatus | None = None,
        consumed_signals: Sequence[int] = (),
        wake_at: datetime | None = None,
    ) -> int:
        request = batch.append_request(
            run_id,
            events,
            expected_seq=expected_seq,
            epoch=epoch,
            status=status,
            consumed_signals=consumed_signals,
            wake_at=wake_at,
        )
        return await self._submit(request, self._db.budget.progress_seconds)

    def _submit(self, request: batch.WriteRequest, budget_seconds: float) -> asyncio.Future[int]:
        self._db.check_open()
        return self._group.submit(request, budget_seconds)

    def _commit_inline(self, requests: list[batch.WriteRequest]) -> list[batch.Outcome] | None:
        """Commit on the event loop's thread when the connection is idle: no hand-off to the
        worker and back (a third of a chain step's cost). On SQLITE_BUSY nothing was written
        and the worker thread, which may wait, takes the batch (None)."""
        try:
            return self._db.inline(self._commit_batch, requests)
        except StoreError as exc:
            return [exc] * len(requests)

    def _commit_on_worker(
        self, requests: list[batch.WriteRequest]
    ) -> asyncio.Future[list[batch.Outcome]]:
        return self._db.on_thread(self._commit_batch, requests)

    def _busy_error(self, item: Queued) -> BaseException:
        consequence = _NOT_CREATED if item.creates else _NOT_APPENDED
        return busy_error(self._path, item.budget_seconds, consequence)

    def _announce(self) -> None:
        """After a commit (on either thread): followers in this process hear of it at once."""
        if self._watch.signal.has_waiters:
            self._loop.call_soon_threadsafe(self._watch.poke)

    def _commit_batch(self, requests: list[batch.WriteRequest]) -> list[batch.Outcome]:
        return self._db.transaction(self._write_batch, requests)

    def _write_batch(self, requests: list[batch.WriteRequest]) -> list[batch.Outcome]:
        positions = {run_id: self._position(run_id) for run_id in {r.run_id for r in requests}}
        threads = {r.thread for r in requests if isinstance(r, batch.CreateRun) and r.thread}
        live = {thread: self._live_on(thread) for thread in threads}
        plan = batch.plan_writes(requests, positions, datetime.now(UTC).timestamp(), live)
        for statement, rows in plan.writes:
            if rows:
                self._conn.executemany(statement, rows)
        return plan.outcomes

    def _live_on(self, thread: str) -> str | None:
        row = self._conn.execute(sql.LIVE_ON_THREAD, (thread,)).fetchone()
        return row[0] if row else None

    def _position(self, run_id: str) -> tuple[int, int] | None:
        row = self._conn.execute(sql.RUN_POSITION, (run_id,)).fetchone()
        return (row[0], row[1]) if row else None

    # -- reads --------------------------------------------------------------------------------

    async def read(self, run_id: str, *, after_seq: int = 0) -> list[StoredEvent]:
        rows = await self._db.read(self._read_rows, run_id, after_seq)
        events = decode_many([(kind, at, data) for kind, at, data, _ in rows])
        return [StoredEvent(run_id, row[3], e) for row, e in zip(rows, events, strict=True)]

    def _read_rows(self, run_id: str, after_seq: int) -> list[tuple[str, float, bytes, int]]:
        rows: list[tuple[str, float, bytes, int]] = self._conn.execute(
            sql.READ_EVENTS, (run_id, after_seq)
        ).fetchall()
        if not rows:
            self._db.require_run(run_id)
        return rows

    async def read_all(self, *, after: int = 0, limit: int = 1000) -> list[tuple[int, StoredEvent]]:
        rows = await self._db.read(self._db.fetch_all, sql.READ_ALL_EVENTS, (after, limit))
        events = decode_many([(row[0], row[1], row[2]) for row in rows])
        return [
            (row[5], StoredEvent(row[3], row[4], e)) for row, e in zip(rows, events, strict=True)
        ]

    async def last_position(self) -> int:
        row = await self._db.read(self._db.fetch_one, sql.LAST_POSITION, ())
        return int(row[0]) if row is not None and row[0] is not None else 0

    async def get_run(self, run_id: str) -> RunRecord:
        row = await self._db.read(self._db.fetch_one, sql.GET_RUN, (run_id,))
        if row is None:
            raise RunNotFoundError(run_id)
        return sql.run_record(row)

    async def list_runs(
        self,
        *,
        statuses: Sequence[RunStatus] | None = None,
        workflow_name: str | None = None,
        limit: int = 100,
        after: str | None = None,
        thread: str | None = None,
    ) -> list[RunRecord]:
        wanted = list(statuses) if statuses is not None else None
        rows = await self._db.read(self._page, wanted, workflow_name, limit, after, thread)
        return [sql.run_record(row) for row in rows]

    async def list_threads(self, *, limit: int = 100) -> list[ThreadRecord]:
        return await self._db.read(self._threads, limit)

    def _threads(self, limit: int) -> list[ThreadRecord]:
        found = []
        for thread, runs, _ in self._db.fetch_all(sql.LIST_THREADS, (max(limit, 0),)):
            newest = self._db.fetch_one(sql.NEWEST_ON_THREAD, (thread,))
            if newest is not None:  # None: pruned between the two reads
                found.append(ThreadRecord(thread, runs, sql.run_record(newest)))
        return found

    def _page(
        self,
        statuses: list[str] | None,
        workflow_name: str | None,
        limit: int,
        after: str | None,
        thread: str | None = None,
    ) -> list[tuple[Any, ...]]:
        cursor = None
        if after is not None:
            cursor = self._db.fetch_one(sql.RUN_CURSOR, (after,))
            if cursor is None:
                raise RunNotFoundError(after)
        if statuses == [] or limit <= 0:
            return []
        at = cast(tuple[float, str] | None, cursor)
        query = sql.list_runs_query(statuses, workflow_name, at, limit, thread)
        return self._db.fetch_all(*query)

    async def wait_for_events(
        self, run_id: str, *, after_seq: int, timeout_seconds: float
    ) -> list[StoredEvent]:
        self._db.check_open()
        read = partial(self.read, run_id, after_seq=after_seq)
        return await events_or_wait(read, self._watch.token, self._watch.wait, timeout_seconds)

    async def wait_for_change(self, *, timeout_seconds: float) -> bool:
        self._db.check_open()
        self._db.check_schema(self._watch.connection)
        return await self._watch.wait(self._watch.token(), timeout_seconds)

    # -- leases ---------------------------------------------------------------------------------

    async def acquire_lease(self, run_id: str, owner: str, *, ttl_seconds: float) -> Lease:
        return await self._db.write_run(self._take_lease, run_id, owner, ttl_seconds)

    def _take_lease(self, run_id: str, owner: str, ttl_seconds: float) -> Lease:
        holder, epoch, expires = self._lease_state(run_id)
        now = datetime.now(UTC)
        if not sql.lease_is_takeable(holder, sql.maybe_instant(expires), owner, now):
            raise LeaseHeldError(run_id, holder or "")
        expires_at = now + timedelta(seconds=ttl_seconds)
        lease = Lease(run_id, owner, epoch + 1, expires_at, taken_from(holder, owner))
        params = (owner, lease.epoch, lease.expires_at.timestamp(), run_id)
        self._conn.execute(sql.TAKE_LEASE, params)
        return lease

    async def renew_lease(self, lease: Lease, *, ttl_seconds: float) -> Lease:
        return await self._db.write_run(self._renew_lease, lease, ttl_seconds)

    def _renew_lease(self, lease: Lease, ttl_seconds: float) -> Lease:
        expires_at = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
        params = (expires_at.timestamp(), lease.run_id, lease.owner, lease.epoch)
        if self._conn.execute(sql.RENEW_LEASE, params).rowcount == 0:
            holder, epoch, _ = self._lease_state(lease.run_id)
            raise ConcurrencyError(sql.lost_lease_message(lease, holder, epoch))
        return replace(lease, expires_at=expires_at)

    async def release_lease(self, lease: Lease) -> None:
        params = (lease.run_id, lease.owner, lease.epoch)
        await self._db.write_run(self._conn.execute, sql.RELEASE_LEASE, params)

    def _lease_state(self, run_id: str) -> tuple[str | None, int, float | None]:
        row = self._conn.execute(sql.LEASE_STATE, (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(run_id)
        return cast(tuple[str | None, int, float | None], row)

    async def claim(
        self,
        owner: str,
        *,
        limit: int,
        ttl_seconds: float,
        queues: Sequence[str] | None = None,
    ) -> list[Claim]:
        wanted = () if queues is None else (json.dumps(list(queues)),)
        if limit <= 0 or not await self._db.read(self._claimable, owner, limit, wanted):
            return []  # the common case, nothing to claim, takes no write lock
        done = "no run was claimed"
        return await self._db.write(done, self._claim, owner, limit, ttl_seconds, wanted)

    def _claimable(
        self, owner: str, limit: int, queues: tuple[str, ...]
    ) -> list[sql.ClaimCandidate]:
        now = datetime.now(UTC).timestamp()
        some = bool(queues)
        free_params = sql.claim_free_params(now, limit, queues)
        free = self._db.fetch_all(_CLAIM_FREE[some], free_params)
        local_params = sql.claim_local_params(now, local_owner_prefix(), owner, queues)
        local = self._db.fetch_all(_CLAIM_LOCAL[some], local_params)
        return sql.claim_candidates(free, local, limit)

    def _claim(
        self, owner: str, limit: int, ttl_seconds: float, queues: tuple[str, ...]
    ) -> list[Claim]:
        expires_at = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
        claims = []
        for candidate in self._claimable(owner, limit, queues):
            holder = taken_from(candidate.holder, owner)
            lease = Lease(candidate.run_id, owner, candidate.epoch + 1, expires_at, holder)
            params = (owner, lease.epoch, expires_at.timestamp(), lease.run_id)
            self._conn.execute(sql.TAKE_LEASE, params)
            claims.append(Claim(lease, candidate.reason))
        return claims

    async def check_writable(self) -> None:
        await self._db.write(_CANNOT_WRITE, self._conn.execute, _WRITE_NOTHING)

    # -- signals and retention ------------------------------------------------------------------

    async def post_signal(self, run_id: str, kind: SignalKind, payload: dict[str, Any]) -> int:
        params = (run_id, kind, json.dumps(payload), datetime.now(UTC).timestamp())
        return await self._db.write("the signal was not posted", self._insert_signal, params)

    def _insert_signal(self, params: tuple[str, str, str, float]) -> int:
        self._db.require_run(params[0])
        return cast(int, self._conn.execute(sql.INSERT_SIGNAL, params).lastrowid)

    async def pending_signals(self, run_id: str) -> list[Signal]:
        rows = await self._db.read(self._pending_rows, run_id)
        return [
            Signal(signal_id, run_id, kind, json.loads(payload), sql.to_instant(created_at))
            for signal_id, _, kind, payload, created_at in rows
        ]

    def _pending_rows(self, run_id: str) -> list[tuple[int, str, SignalKind, str, float]]:
        self._db.require_run(run_id)
        return self._conn.execute(sql.PENDING_SIGNALS, (run_id,)).fetchall()

    async def prune(
        self,
        *,
        finished_before: datetime | None = None,
        statuses: Sequence[RunStatus] = ("succeeded", "failed", "cancelled"),
        dry_run: bool = False,
    ) -> list[RunRecord]:
        wanted = sql.check_prunable(statuses)
        cutoff = finished_before.timestamp() if finished_before is not None else None
        if not wanted:
            return []
        if dry_run:
            return await self._db.read(self._prunable, wanted, cutoff)
        return await self._db.write("nothing was pruned", self._prune, wanted, cutoff)

    def _prunable(self, statuses: list[str], cutoff: float | None) -> list[RunRecord]:
        now = datetime.now(UTC)
        records = [
            sql.run_record(r) for r in self._db.fetch_all(*sql.prune_query(statuses, cutoff))
        ]
        return [r for r in records if sql.lease_is_free(r.owner, r.lease_expires_at, now)]

    def _prune(self, statuses: list[str], cutoff: float | None) -> list[RunRecord]:
        doomed = self._prunable(statuses, cutoff)
        run_ids = [(record.run_id,) for record in doomed]
        if run_ids:
            self._conn.execute(sql.KEEP_POSITION_FLOOR)
        for statement in (sql.DELETE_SIGNALS, sql.DELETE_EVENTS, sql.DELETE_RUN):
            self._conn.executemany(statement, run_ids)
        return doomed

    # -- lifecycle ------------------------------------------------------------------------------

    async def close(self) -> None:
        """Wait for queued writes, then close the connections and stop the worker thread."""
        if self._db.closed:
            return
        await self._group.idle.wait()
        self._watch.close()
        await self._db.close()
