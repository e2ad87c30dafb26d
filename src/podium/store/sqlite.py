"""The SQLite event store: one file in WAL mode, one worker thread, group-committed appends."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

from podium.core.events import Event, RunCreated, decode_many
from podium.errors import ConcurrencyError, LeaseHeldError, RunNotFoundError, StoreError
from podium.store import _batch as batch
from podium.store import _sql as sql
from podium.store._changes import events_or_wait
from podium.store._sqlite_commit import Busy, GroupCommit, Queued
from podium.store._sqlite_open import (
    SLICE_SECONDS,
    BusyBudget,
    SchemaGuard,
    backoff_seconds,
    busy_error,
    connect,
    failure,
    is_busy,
)
from podium.store._sqlite_watch import DataVersionWatch
from podium.store.base import (
    Claim,
    Lease,
    RunRecord,
    RunStatus,
    Signal,
    SignalKind,
    StoredEvent,
    local_owner_prefix,
)

T = TypeVar("T")
_SLICE_MS = int(SLICE_SECONDS * 1000)
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
        self._conn = conn
        self._executor = executor
        self._watch = watch
        self._budget = budget
        self._guard = SchemaGuard(str(path), conn)
        self._loop = asyncio.get_running_loop()
        self._group = GroupCommit(
            self._commit_inline, self._commit_on_worker, self._queued_busy_error
        )
        self._closed = False
        self._thread_jobs = 0
        self.commits = 0
        """Write transactions committed so far (benchmarks and tests read it)."""

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str], *, busy_seconds: float | None = None
    ) -> SQLiteEventStore:
        """Open (creating it and its folder if needed) and migrate the store file at `path`."""
        budget = BusyBudget.resolve(busy_seconds)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="podium-sqlite")
        loop = asyncio.get_running_loop()
        try:
            where, conn = await loop.run_in_executor(executor, connect, path, budget)
            watch = await loop.run_in_executor(executor, DataVersionWatch, where)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(where, conn, executor, watch, budget)

    @property
    def path(self) -> Path:
        return self._path

    async def now(self) -> datetime:
        return datetime.now(UTC)

    # -- writes that are group-committed ------------------------------------------------------

    async def create_run(self, created: RunCreated, *, workflow_name: str) -> None:
        row = batch.event_row(created.run_id, 1, created)
        request = batch.CreateRun(created.run_id, workflow_name, row)
        await self._submit(request, self._budget.seconds)

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
        rows = [batch.event_row(run_id, seq, e) for seq, e in enumerate(events, expected_seq + 1)]
        wake = wake_at.timestamp() if wake_at is not None else None
        request = batch.AppendEvents(
            run_id, expected_seq, epoch, status, consumed_signals, rows, wake
        )
        return await self._submit(request, self._budget.progress_seconds)

    def _submit(self, request: batch.WriteRequest, budget_seconds: float) -> asyncio.Future[int]:
        self._check_open()
        return self._group.submit(request, budget_seconds)

    def _commit_inline(self, requests: list[batch.WriteRequest]) -> list[batch.Outcome] | None:
        """Commit on the event loop's thread when the connection is idle: no hand-off to the
        worker and back (a third of a chain step's cost). It never waits for a lock another
        process holds: on SQLITE_BUSY nothing was written and the worker thread, which may wait,
        takes the batch (None)."""
        if self._thread_jobs:
            return None
        self._conn.execute("PRAGMA busy_timeout = 0")
        try:
            return self._guarded(self._commit_batch, requests)
        except Busy:
            return None
        except StoreError as exc:
            return [exc] * len(requests)
        finally:
            self._conn.execute(f"PRAGMA busy_timeout = {_SLICE_MS}")

    def _commit_on_worker(
        self, requests: list[batch.WriteRequest]
    ) -> asyncio.Future[list[batch.Outcome]]:
        self._thread_jobs += 1
        done = self._loop.run_in_executor(
            self._executor, self._guarded, self._commit_batch, requests
        )
        done.add_done_callback(lambda _: self._job_done())
        return done

    def _queued_busy_error(self, item: Queued) -> BaseException:
        consequence = _NOT_CREATED if item.creates else _NOT_APPENDED
        return busy_error(self._path, item.budget_seconds, consequence)

    def _commit_batch(self, requests: list[batch.WriteRequest]) -> list[batch.Outcome]:
        return self._transaction(self._write_batch, requests)

    def _write_batch(self, requests: list[batch.WriteRequest]) -> list[batch.Outcome]:
        positions = {run_id: self._position(run_id) for run_id in {r.run_id for r in requests}}
        plan = batch.plan_writes(requests, positions, datetime.now(UTC).timestamp())
        for statement, rows in plan.writes:
            if rows:
                self._conn.executemany(statement, rows)
        return plan.outcomes

    def _position(self, run_id: str) -> tuple[int, int] | None:
        row = self._conn.execute(sql.RUN_POSITION, (run_id,)).fetchone()
        return (row[0], row[1]) if row else None

    # -- reads --------------------------------------------------------------------------------

    async def read(self, run_id: str, *, after_seq: int = 0) -> list[StoredEvent]:
        rows = await self._read(self._read_rows, run_id, after_seq)
        events = decode_many([(kind, data) for kind, data, _ in rows])
        return [StoredEvent(run_id, row[2], e) for row, e in zip(rows, events, strict=True)]

    def _read_rows(self, run_id: str, after_seq: int) -> list[tuple[str, bytes, int]]:
        rows: list[tuple[str, bytes, int]] = self._conn.execute(
            sql.READ_EVENTS, (run_id, after_seq)
        ).fetchall()
        if not rows:
            self._require_run(run_id)
        return rows

    async def get_run(self, run_id: str) -> RunRecord:
        row = await self._read(self._fetch_one, sql.GET_RUN, (run_id,))
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
    ) -> list[RunRecord]:
        wanted = list(statuses) if statuses is not None else None
        rows = await self._read(self._page, wanted, workflow_name, limit, after)
        return [sql.run_record(row) for row in rows]

    def _page(
        self, statuses: list[str] | None, workflow_name: str | None, limit: int, after: str | None
    ) -> list[tuple[Any, ...]]:
        cursor = None
        if after is not None:
            cursor = self._fetch_one(sql.RUN_CURSOR, (after,))
            if cursor is None:
                raise RunNotFoundError(after)
        if statuses == [] or limit <= 0:
            return []
        at = cast(tuple[float, str] | None, cursor)
        return self._fetch_all(*sql.list_runs_query(statuses, workflow_name, at, limit))

    async def wait_for_events(
        self, run_id: str, *, after_seq: int, timeout_seconds: float
    ) -> list[StoredEvent]:
        self._check_open()
        read = partial(self.read, run_id, after_seq=after_seq)
        return await events_or_wait(read, self._watch.token, self._watch.wait, timeout_seconds)

    async def wait_for_change(self, *, timeout_seconds: float) -> bool:
        self._check_open()
        try:
            self._guard.check(self._watch.connection)
        except sqlite3.Error as exc:
            raise failure(self._path, exc) from exc
        return await self._watch.wait(self._watch.token(), timeout_seconds)

    # -- leases ---------------------------------------------------------------------------------

    async def acquire_lease(self, run_id: str, owner: str, *, ttl_seconds: float) -> Lease:
        return await self._write_run(self._take_lease, run_id, owner, ttl_seconds)

    def _take_lease(self, run_id: str, owner: str, ttl_seconds: float) -> Lease:
        holder, epoch, expires = self._lease_state(run_id)
        now = datetime.now(UTC)
        if not sql.lease_is_takeable(holder, sql.maybe_instant(expires), owner, now):
            raise LeaseHeldError(run_id, holder or "")
        lease = Lease(run_id, owner, epoch + 1, now + timedelta(seconds=ttl_seconds))
        params = (owner, lease.epoch, lease.expires_at.timestamp(), run_id)
        self._conn.execute(sql.TAKE_LEASE, params)
        return lease

    async def renew_lease(self, lease: Lease, *, ttl_seconds: float) -> Lease:
        return await self._write_run(self._renew_lease, lease, ttl_seconds)

    def _renew_lease(self, lease: Lease, ttl_seconds: float) -> Lease:
        expires_at = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
        params = (expires_at.timestamp(), lease.run_id, lease.owner, lease.epoch)
        if self._conn.execute(sql.RENEW_LEASE, params).rowcount == 0:
            holder, epoch, _ = self._lease_state(lease.run_id)
            raise ConcurrencyError(sql.lost_lease_message(lease, holder, epoch))
        return Lease(lease.run_id, lease.owner, lease.epoch, expires_at)

    async def release_lease(self, lease: Lease) -> None:
        params = (lease.run_id, lease.owner, lease.epoch)
        await self._write_run(self._conn.execute, sql.RELEASE_LEASE, params)

    def _lease_state(self, run_id: str) -> tuple[str | None, int, float | None]:
        row = self._conn.execute(sql.LEASE_STATE, (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(run_id)
        return cast(tuple[str | None, int, float | None], row)

    async def claim(self, owner: str, *, limit: int, ttl_seconds: float) -> list[Claim]:
        if limit <= 0 or not await self._read(self._claimable, owner, limit):
            return []  # the common case, nothing to claim, takes no write lock
        return await self._write("no run was claimed", self._claim, owner, limit, ttl_seconds)

    def _claimable(self, owner: str, limit: int) -> list[sql.ClaimCandidate]:
        now = datetime.now(UTC).timestamp()
        free = self._fetch_all(sql.CLAIM_FREE, sql.claim_free_params(now, limit))
        local_params = sql.claim_local_params(now, local_owner_prefix(), owner)
        local = self._fetch_all(sql.CLAIM_LOCAL, local_params)
        return sql.claim_candidates(free, local, limit)

    def _claim(self, owner: str, limit: int, ttl_seconds: float) -> list[Claim]:
        expires_at = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
        claims = []
        for candidate in self._claimable(owner, limit):
            lease = Lease(candidate.run_id, owner, candidate.epoch + 1, expires_at)
            params = (owner, lease.epoch, expires_at.timestamp(), lease.run_id)
            self._conn.execute(sql.TAKE_LEASE, params)
            claims.append(Claim(lease, candidate.reason))
        return claims

    # -- signals and retention ------------------------------------------------------------------

    async def post_signal(self, run_id: str, kind: SignalKind, payload: dict[str, Any]) -> int:
        params = (run_id, kind, json.dumps(payload), datetime.now(UTC).timestamp())
        return await self._write("the signal was not posted", self._insert_signal, params)

    def _insert_signal(self, params: tuple[str, str, str, float]) -> int:
        self._require_run(params[0])
        return cast(int, self._conn.execute(sql.INSERT_SIGNAL, params).lastrowid)

    async def pending_signals(self, run_id: str) -> list[Signal]:
        rows = await self._read(self._pending_rows, run_id)
        return [
            Signal(signal_id, run_id, kind, json.loads(payload), sql.to_instant(created_at))
            for signal_id, _, kind, payload, created_at in rows
        ]

    def _pending_rows(self, run_id: str) -> list[tuple[int, str, SignalKind, str, float]]:
        self._require_run(run_id)
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
            return await self._read(self._prunable, wanted, cutoff)
        return await self._write("nothing was pruned", self._prune, wanted, cutoff)

    def _prunable(self, statuses: list[str], cutoff: float | None) -> list[RunRecord]:
        now = datetime.now(UTC)
        records = [sql.run_record(r) for r in self._fetch_all(*sql.prune_query(statuses, cutoff))]
        return [r for r in records if sql.lease_is_free(r.owner, r.lease_expires_at, now)]

    def _prune(self, statuses: list[str], cutoff: float | None) -> list[RunRecord]:
        doomed = self._prunable(statuses, cutoff)
        run_ids = [(record.run_id,) for record in doomed]
        for statement in (sql.DELETE_SIGNALS, sql.DELETE_EVENTS, sql.DELETE_RUN):
            self._conn.executemany(statement, run_ids)
        return doomed

    # -- lifecycle and plumbing -----------------------------------------------------------------

    async def close(self) -> None:
        """Wait for queued writes, then close the connections and stop the worker thread."""
        if self._closed:
            return
        await self._group.idle.wait()
        self._closed = True
        self._watch.close()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=True)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store at {self._path} is closed; open it again to use it")

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._retrying(self._budget.seconds, "nothing was read", fn, *args)

    async def _write(self, consequence: str, fn: Callable[..., T], *args: Any) -> T:
        budget = self._budget.seconds
        return await self._retrying(budget, consequence, self._transaction, fn, *args)

    async def _write_run(self, fn: Callable[..., T], *args: Any) -> T:
        """A write to a run that exists (its lease): it keeps trying for longer."""
        budget, consequence = self._budget.progress_seconds, "the lease was not changed"
        return await self._retrying(budget, consequence, self._transaction, fn, *args)

    async def _retrying(
        self, budget_seconds: float, consequence: str, fn: Callable[..., T], *args: Any
    ) -> T:
        deadline = time.monotonic() + budget_seconds
        attempt = 0
        while True:
            try:
                return await self._call(fn, *args)
            except Busy:
                if time.monotonic() >= deadline:
                    raise busy_error(self._path, budget_seconds, consequence) from None
            await asyncio.sleep(backoff_seconds(attempt))
            attempt += 1

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        self._check_open()
        loop = asyncio.get_running_loop()
        job = self._executor.submit(self._guarded, fn, *args)
        self._thread_jobs += 1  # the connection is the worker's until the job ends: no inline
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self._job_done))
        return await asyncio.wrap_future(job, loop=loop)

    def _job_done(self) -> None:
        self._thread_jobs -= 1

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn` on the connection, refusing a newer schema and turning driver errors into
        StoreErrors (a lock held elsewhere for a whole slice into Busy: retried)."""
        try:
            self._guard.check(self._conn)
            return fn(*args)
        except sqlite3.Error as exc:
            if is_busy(exc):
                raise Busy(str(exc)) from exc
            raise failure(self._path, exc) from exc

    def _transaction(self, fn: Callable[..., T], *args: Any) -> T:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(*args)
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self.commits += 1
        if self._watch.signal.has_waiters:  # followers in this process hear of it at once
            self._loop.call_soon_threadsafe(self._watch.poke)
        return result

    def _fetch_one(self, query: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        return cast(tuple[Any, ...] | None, self._conn.execute(query, params).fetchone())

    def _fetch_all(self, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self._conn.execute(query, params).fetchall()

    def _require_run(self, run_id: str) -> None:
        if self._conn.execute(sql.RUN_EXISTS, (run_id,)).fetchone() is None:
            raise RunNotFoundError(run_id)
