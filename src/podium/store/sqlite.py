"""The SQLite event store: one file in WAL mode, one worker thread, group-committed appends."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

from podium.core.events import Event, RunCreated, decode_many
from podium.errors import (
    ConcurrencyError,
    LeaseHeldError,
    RunNotFoundError,
    StoreError,
    StoreUnavailableError,
)
from podium.store import _sql as sql
from podium.store.base import Lease, RunRecord, RunStatus, Signal, SignalKind, StoredEvent

T = TypeVar("T")
_BUSY_TIMEOUT_MS = 5000


class SQLiteEventStore:
    """Open with `await SQLiteEventStore.open(path)`; every database call runs on one worker thread.

    Concurrent `create_run`/`append` calls are queued and committed together: the worker writes
    everything queued in one `BEGIN IMMEDIATE … COMMIT`, refusing (as values) the requests whose
    run position or epoch does not match, so many runs cost one fsync per turn, not one each.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self._path = path
        self._conn = conn
        self._executor = executor
        self._queue: list[tuple[sql.WriteRequest, asyncio.Future[int]]] = []
        self._writing = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._thread_jobs = 0
        self.commits = 0
        """Write transactions committed so far (benchmarks and tests read it)."""

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> SQLiteEventStore:
        """Open (creating it and its folder if needed) and migrate the store file at `path`."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="podium-sqlite")
        loop = asyncio.get_running_loop()
        try:
            where, conn = await loop.run_in_executor(executor, _connect, path)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(where, conn, executor)

    @property
    def path(self) -> Path:
        return self._path

    # -- writes that are group-committed ------------------------------------------------------

    async def create_run(self, created: RunCreated, *, workflow_name: str) -> None:
        row = sql.event_row(created.run_id, 1, created)
        await self._submit(sql.CreateRun(created.run_id, workflow_name, row))

    async def append(
        self,
        run_id: str,
        events: Sequence[Event],
        *,
        expected_seq: int,
        epoch: int,
        status: RunStatus | None = None,
        consumed_signals: Sequence[int] = (),
    ) -> int:
        rows = [sql.event_row(run_id, seq, e) for seq, e in enumerate(events, expected_seq + 1)]
        request = sql.AppendEvents(run_id, expected_seq, epoch, status, consumed_signals, rows)
        return await self._submit(request)

    def _submit(self, request: sql.WriteRequest) -> asyncio.Future[int]:
        # A caller cancelled while waiting does not stop the write: it may still commit, and the
        # next append with a stale expected_seq then tells the driver to re-read the run.
        self._check_open()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._queue.append((request, future))
        if not self._writing:
            self._writing = True
            self._idle.clear()
            loop.call_soon(self._write_queued, loop)
        return future

    def _write_queued(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._queue = self._queue, []
        requests = [request for request, _ in batch]
        if self._thread_jobs == 0 and (outcomes := self._commit_inline(requests)) is not None:
            self._settle(loop, batch, outcomes)
            return
        self._thread_jobs += 1
        done = loop.run_in_executor(self._executor, self._guarded, self._commit_batch, requests)
        done.add_done_callback(partial(self._resolve, loop, batch))

    def _commit_inline(self, requests: list[sql.WriteRequest]) -> list[sql.Outcome] | None:
        """Commit on the event loop's thread when the connection is idle: no hand-off to the
        worker and back (a third of a chain step's cost). It never waits for a lock another
        process holds: on SQLITE_BUSY nothing was written and the worker thread, which may wait,
        takes the batch (None)."""
        self._conn.execute("PRAGMA busy_timeout = 0")
        try:
            return self._commit_batch(requests)
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                return None
            return [_failure(self._path, exc)] * len(requests)
        except sqlite3.Error as exc:
            return [_failure(self._path, exc)] * len(requests)
        finally:
            self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")

    def _resolve(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[tuple[sql.WriteRequest, asyncio.Future[int]]],
        done: asyncio.Future[list[sql.Outcome]],
    ) -> None:
        self._thread_jobs -= 1
        error = StoreError("the write was cancelled") if done.cancelled() else done.exception()
        outcomes = [error] * len(batch) if error is not None else done.result()
        self._settle(loop, batch, outcomes)

    def _settle(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[tuple[sql.WriteRequest, asyncio.Future[int]]],
        outcomes: Sequence[sql.Outcome | BaseException],
    ) -> None:
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        if self._queue:
            loop.call_soon(self._write_queued, loop)
        else:
            self._writing = False
            self._idle.set()

    def _commit_batch(self, requests: list[sql.WriteRequest]) -> list[sql.Outcome]:
        return self._transaction(self._write_batch, requests)

    def _write_batch(self, requests: list[sql.WriteRequest]) -> list[sql.Outcome]:
        positions = {run_id: self._position(run_id) for run_id in {r.run_id for r in requests}}
        plan = sql.plan_writes(requests, positions, datetime.now(UTC).timestamp())
        for statement, rows in plan.writes:
            if rows:
                self._conn.executemany(statement, rows)
        return plan.outcomes

    def _position(self, run_id: str) -> tuple[int, int] | None:
        row = self._conn.execute(sql.RUN_POSITION, (run_id,)).fetchone()
        return (row[0], row[1]) if row else None

    # -- reads --------------------------------------------------------------------------------

    async def read(self, run_id: str, *, after_seq: int = 0) -> list[StoredEvent]:
        rows = await self._call(self._read_rows, run_id, after_seq)
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
        row = await self._call(self._fetch_one, sql.GET_RUN, (run_id,))
        if row is None:
            raise RunNotFoundError(run_id)
        return sql.run_record(row)

    async def list_runs(
        self, *, statuses: Sequence[RunStatus] | None = None, limit: int = 100
    ) -> list[RunRecord]:
        wanted = list(statuses) if statuses is not None else []
        if statuses is not None and not wanted:
            return []
        query = sql.list_runs_query(len(wanted))
        rows = await self._call(self._fetch_all, query, (*wanted, limit))
        return [sql.run_record(row) for row in rows]

    # -- leases ---------------------------------------------------------------------------------

    async def acquire_lease(self, run_id: str, owner: str, *, ttl_seconds: float) -> Lease:
        return await self._call(self._transaction, self._take_lease, run_id, owner, ttl_seconds)

    def _take_lease(self, run_id: str, owner: str, ttl_seconds: float) -> Lease:
        holder, epoch, expires = self._lease_state(run_id)
        now = datetime.now(UTC)
        expires_at = sql.to_instant(expires) if expires is not None else None
        if not sql.lease_is_takeable(holder, expires_at, owner, now):
            raise LeaseHeldError(run_id, holder or "")
        lease = Lease(run_id, owner, epoch + 1, now + timedelta(seconds=ttl_seconds))
        self._conn.execute(
            sql.TAKE_LEASE, (owner, lease.epoch, lease.expires_at.timestamp(), run_id)
        )
        return lease

    async def renew_lease(self, lease: Lease, *, ttl_seconds: float) -> Lease:
        return await self._call(self._transaction, self._renew_lease, lease, ttl_seconds)

    def _renew_lease(self, lease: Lease, ttl_seconds: float) -> Lease:
        expires_at = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
        params = (expires_at.timestamp(), lease.run_id, lease.owner, lease.epoch)
        if self._conn.execute(sql.RENEW_LEASE, params).rowcount == 0:
            holder, epoch, _ = self._lease_state(lease.run_id)
            raise ConcurrencyError(sql.lost_lease_message(lease, holder, epoch))
        return Lease(lease.run_id, lease.owner, lease.epoch, expires_at)

    async def release_lease(self, lease: Lease) -> None:
        params = (lease.run_id, lease.owner, lease.epoch)
        await self._call(self._transaction, self._conn.execute, sql.RELEASE_LEASE, params)

    def _lease_state(self, run_id: str) -> tuple[str | None, int, float | None]:
        row = self._conn.execute(sql.LEASE_STATE, (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(run_id)
        return cast(tuple[str | None, int, float | None], row)

    # -- signals and retention ------------------------------------------------------------------

    async def post_signal(self, run_id: str, kind: SignalKind, payload: dict[str, Any]) -> int:
        params = (run_id, kind, json.dumps(payload), datetime.now(UTC).timestamp())
        return await self._call(self._transaction, self._insert_signal, params)

    def _insert_signal(self, params: tuple[str, str, str, float]) -> int:
        self._require_run(params[0])
        return cast(int, self._conn.execute(sql.INSERT_SIGNAL, params).lastrowid)

    async def pending_signals(self, run_id: str) -> list[Signal]:
        rows = await self._call(self._pending_rows, run_id)
        return [
            Signal(signal_id, run_id, kind, json.loads(payload), sql.to_instant(created_at))
            for signal_id, _, kind, payload, created_at in rows
        ]

    def _pending_rows(self, run_id: str) -> list[tuple[int, str, SignalKind, str, float]]:
        self._require_run(run_id)
        return self._conn.execute(sql.PENDING_SIGNALS, (run_id,)).fetchall()

    async def prune(self, *, finished_before: datetime) -> int:
        return await self._call(self._transaction, self._prune, finished_before.timestamp())

    def _prune(self, cutoff: float) -> int:
        doomed = self._conn.execute(sql.PRUNABLE_RUNS, (cutoff,)).fetchall()
        for statement in (sql.DELETE_SIGNALS, sql.DELETE_EVENTS, sql.DELETE_RUN):
            self._conn.executemany(statement, doomed)
        return len(doomed)

    # -- lifecycle and plumbing -----------------------------------------------------------------

    async def close(self) -> None:
        """Wait for queued writes, then close the connection and stop the worker thread."""
        if self._closed:
            return
        await self._idle.wait()
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=True)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store at {self._path} is closed; open it again to use it")

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
        """Run `fn` on the worker thread, turning driver errors into StoreErrors."""
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            raise _failure(self._path, exc) from exc

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
        return result

    def _fetch_one(self, query: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        return cast(tuple[Any, ...] | None, self._conn.execute(query, params).fetchone())

    def _fetch_all(self, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self._conn.execute(query, params).fetchall()

    def _require_run(self, run_id: str) -> None:
        if self._conn.execute(sql.RUN_EXISTS, (run_id,)).fetchone() is None:
            raise RunNotFoundError(run_id)


# -- opening ----------------------------------------------------------------------------------


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _connect(location: str | os.PathLike[str]) -> tuple[Path, sqlite3.Connection]:
    """Open, configure and migrate; a failure becomes a StoreUnavailableError saying what to do."""
    path = Path(location).expanduser()
    if path.is_dir():
        raise StoreUnavailableError(
            f"the Podium store path {path} is a directory; pass a file path such as "
            f"{path / 'podium.db'}"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnavailableError(
            f"cannot create the folder for the Podium store at {path}: {exc}; choose a "
            "writable location (--db or PODIUM_DB)"
        ) from exc
    try:
        conn = sqlite3.connect(
            path, isolation_level=None, timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise _unavailable(path, exc) from exc
    try:
        _configure(conn)
        _migrate(conn, str(path))
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise _unavailable(path, exc) from exc
        raise
    return path, conn


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    _enter_wal(conn)
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")


def _enter_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL. Two processes switching a new file at once can deadlock on SQLite's locks,
    and SQLite then fails one at once without honouring the busy timeout: retry with backoff."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _migrate(conn: sqlite3.Connection, where: str) -> None:
    """Apply the packaged migrations this file lacks, in order, in one transaction."""
    known = sql.migrations()
    latest = known[-1].version
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(sql.CREATE_MIGRATIONS_TABLE)
        current = conn.execute(sql.SCHEMA_VERSION).fetchone()[0]
        if current > latest:
            raise StoreUnavailableError(sql.newer_schema_message(where, current, latest))
        for migration in known:
            if migration.version > current:
                for statement in _statements(migration.script):
                    conn.execute(statement)
                applied_at = datetime.now(UTC).timestamp()
                conn.execute(sql.RECORD_MIGRATION, (migration.version, applied_at))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> Iterator[str]:
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""


_OPEN_HINTS = (
    ("not a database", "the file is not a Podium (SQLite) database or its header is damaged"),
    ("malformed", "the database file is damaged; restore it from a backup or move it away"),
    ("unable to open", "check that the path and its folder exist and are readable and writable"),
    ("readonly", "the file or its folder is read-only; fix the permissions"),
    ("locked", "another process kept it locked for 5 s; stop that process or try again"),
)


def _unavailable(path: Path, exc: sqlite3.Error) -> StoreUnavailableError:
    text = str(exc)
    hint = next((h for key, h in _OPEN_HINTS if key in text), "check the file and its folder")
    return StoreUnavailableError(
        f"cannot open the Podium store at {path}: {text}; {hint}, or point --db / PODIUM_DB at "
        "another file"
    )


def _failure(path: Path, exc: sqlite3.Error) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreUnavailableError(
            f"the Podium store at {path} stayed locked by another process for "
            f"{_BUSY_TIMEOUT_MS // 1000} s; stop the process that holds it, then try again"
        )
    return StoreError(
        f"the Podium store at {path} failed: {text}; check free disk space and permissions, and "
        "run `sqlite3 FILE 'PRAGMA integrity_check'` if it persists"
    )
