"""The Postgres event store: a connection pool, one transaction per call, row locks for fencing.

Many processes on many hosts may share one database. What keeps them apart:

- `append` locks the run's row (`SELECT … FOR UPDATE`) and checks its last seq and lease epoch
  before writing, so a stale driver is refused even if it races the new one.
- `claim` picks its candidates `FOR UPDATE SKIP LOCKED`, so two claimers never take one run.
- Global positions come from the single-row `position_counter`, bumped by every transaction that
  inserts events. A sequence would be cheaper but hands out numbers in *start* order: a reader
  could see position 7 committed while 6 was still in flight, and then skip 6 for ever. The
  counter row's lock is held to commit, so positions are given in commit order and a reader that
  has seen P never later finds an event numbered ≤ P (the cost: event inserts serialize).
- Every instant the store decides with is the database's `clock_timestamp()`, not a host's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from podium.core.events import Event, RunCreated, decode_many
from podium.errors import (
    RunNotFoundError,
    StoreError,
    StoreUnavailableError,
)
from podium.store import _batch as batch
from podium.store import _pg_open as pg
from podium.store import _pg_tx as tx
from podium.store import _sql as sql
from podium.store._changes import events_or_wait
from podium.store._pg_open import Conn, q
from podium.store._pg_watch import NOTIFY, NotifyWatch, channel_for
from podium.store.base import (
    Claim,
    Lease,
    RunRecord,
    RunStatus,
    Signal,
    SignalKind,
    StoredEvent,
    ThreadRecord,
)

T = TypeVar("T")
RETRY_SECONDS = 30.0
POOL_SIZE = 8


class PostgresEventStore:
    """Open with `await PostgresEventStore.open(url)`; close with `await store.close()`.

    A call that loses its connection (a server restart, a failover) or its transaction (a
    deadlock, a serialization failure) is retried with jittered backoff for `retry_seconds`,
    then fails with a StoreUnavailableError naming the server. A `create_run` or `append` whose
    COMMIT was sent but never acknowledged may have been recorded: its retry finds its own events
    and reports success rather than refusing itself (see `_pg_tx`). Other writes are retried as
    they are: a lease taken again by its owner gets the next epoch, which is harmless; a claim
    whose commit was lost leaves its runs leased to the owner, unknown to it, until their TTL runs
    out and they are claimed again; and such a `post_signal` may be posted twice.
    """

    def __init__(
        self, url: str, pool: AsyncConnectionPool[Conn], watch: NotifyWatch, retry_seconds: float
    ) -> None:
        self._where = pg.redacted(url)
        self._pool = pool
        self._watch = watch
        self._retry_seconds = retry_seconds
        self._closed = False

    @classmethod
    async def open(
        cls, url: str, *, create: bool = True, retry_seconds: float = RETRY_SECONDS
    ) -> PostgresEventStore:
        """Connect to the database `url` names and migrate it (with `create=False` it must hold
        a current Podium store: nothing is created or migrated). Tables live in the URL's
        search_path (`?options=-csearch_path%3DNAME` to pick a schema)."""
        where = pg.redacted(url)
        conn = await pg.connect(url, where)
        try:
            schema = await pg.prepare(conn, where, create)
            watch = NotifyWatch(url, channel_for(schema))
            await watch.start(conn)
        except BaseException:
            await conn.close()
            raise
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=POOL_SIZE,
            open=False,
            kwargs={"autocommit": True},
            check=AsyncConnectionPool.check_connection,
            timeout=retry_seconds,  # waiting for a connection spends the same budget
            name=f"podium {where}",
        )
        try:
            await pool.open(wait=True, timeout=pg.CONNECT_TIMEOUT_SECONDS)
        except BaseException as exc:
            await watch.close()
            await pool.close()
            if isinstance(exc, psycopg.Error):
                raise pg.unreachable(where, exc) from exc
            raise
        return cls(url, pool, watch, retry_seconds)

    @property
    def where(self) -> str:
        """The store's URL without its password."""
        return self._where

    # -- the transaction every call runs in -------------------------------------------------

    async def _tx(
        self,
        consequence: str,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        changed: Callable[[T], bool] | None = None,
        atomic: bool = True,
        again: Callable[..., Awaitable[T]] | None = None,
    ) -> T:
        """`fn(conn, *args)` in one transaction (without `atomic`, a read: each statement on its
        own), retried while failures are transient. With `changed`, a result it calls a change
        is announced: NOTIFY in the transaction (others hear it when it commits) and this
        store's waiters at once after the commit. After a transient failure, `again` (if given)
        is called instead of `fn`: it checks whether the lost attempt committed after all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_seconds
        attempt = 0
        while True:
            self._check_open()
            call = fn if attempt == 0 or again is None else again
            seen: Conn | None = None
            try:
                async with self._pool.connection() as conn:
                    seen = conn
                    if not atomic:
                        return await call(conn, *args)
                    async with conn.transaction():
                        # A write that is always a change says so first, so that what it does
                        # last (the locked counter row, for event inserts) is followed at once
                        # by COMMIT: NOTIFY is only delivered at commit, wherever it is sent.
                        notify = (self._watch.channel, self._watch.origin)
                        if changed is _always:
                            await conn.execute(NOTIFY, notify)
                        result = await call(conn, *args)
                        announce = changed is not None and changed(result)
                        if announce and changed is not _always:
                            await conn.execute(NOTIFY, notify)
                break
            except psycopg.Error as exc:
                if not pg.is_transient(exc, seen):
                    raise pg.failed(self._where, exc, consequence) from exc
                if loop.time() >= deadline:
                    raise self._gone(exc, consequence) from exc
            await asyncio.sleep(pg.backoff_seconds(attempt))
            attempt += 1
        if announce:
            self._watch.signal.fire()
        return result

    def _gone(self, exc: BaseException, consequence: str) -> StoreUnavailableError:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        return StoreUnavailableError(
            f"the Podium store at {self._where} could not be reached for {self._retry_seconds:g}"
            f" s ({detail}); {consequence}. Check that the Postgres server is up and reachable"
        )

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store at {self._where} is closed; open it again to use it")

    async def _read(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return await self._tx("nothing was read", fn, *args, atomic=False)

    async def now(self) -> datetime:
        return sql.to_instant(await self._read(tx.db_now))

    # -- the log --------------------------------------------------------------------------------

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
        request = batch.create_request(
            created,
            then,
            workflow_name=workflow_name,
            owner=lease_owner,
            lease_expires_at=None,  # the database's clock sets it
            exclusive=exclusive,
        )
        done = "nothing was recorded and no run was created"
        expires = await self._tx(
            done, tx.create_run, request, ttl_seconds, changed=_always, again=tx.create_run_again
        )
        if lease_owner is None or expires is None:
            return None
        return Lease(created.run_id, lease_owner, 1, sql.to_instant(expires))

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
        done = (
            "these events were not recorded; the run keeps its last recorded state and "
            "`podium resume` continues it"
        )
        return await self._tx(done, tx.append, request, changed=_always, again=tx.append_again)

    async def read(self, run_id: str, *, after_seq: int = 0) -> list[StoredEvent]:
        rows = await self._read(tx.read_rows, run_id, after_seq)
        events = decode_many([(kind, at, data) for kind, at, data, _ in rows])
        return [StoredEvent(run_id, row[3], e) for row, e in zip(rows, events, strict=True)]

    async def read_all(self, *, after: int = 0, limit: int = 1000) -> list[tuple[int, StoredEvent]]:
        rows = await self._read(tx.fetch_all, q(sql.READ_ALL_EVENTS), (after, max(limit, 0)))
        events = decode_many([(row[0], row[1], bytes(row[2])) for row in rows])
        return [
            (row[5], StoredEvent(row[3], row[4], e)) for row, e in zip(rows, events, strict=True)
        ]

    async def last_position(self) -> int:
        return int(await self._read(tx.fetch_one, tx.LAST_POSITION))

    # -- listings -------------------------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunRecord:
        row = await self._read(tx.fetch_row, q(sql.GET_RUN), (run_id,))
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
        rows = await self._read(tx.page, wanted, workflow_name, limit, after, thread)
        return [sql.run_record(row) for row in rows]

    async def list_threads(self, *, limit: int = 100) -> list[ThreadRecord]:
        return await self._read(tx.threads, limit)

    # -- waits ----------------------------------------------------------------------------------

    async def wait_for_events(
        self, run_id: str, *, after_seq: int, timeout_seconds: float
    ) -> list[StoredEvent]:
        self._check_open()
        read = partial(self.read, run_id, after_seq=after_seq)
        return await events_or_wait(read, self._watch.token, self._watch.wait, timeout_seconds)

    async def wait_for_change(self, *, timeout_seconds: float) -> bool:
        self._check_open()
        return await self._watch.wait(self._watch.token(), timeout_seconds)

    # -- leases ---------------------------------------------------------------------------------

    async def acquire_lease(self, run_id: str, owner: str, *, ttl_seconds: float) -> Lease:
        done = "the lease was not taken"
        return await self._tx(done, tx.take_lease, run_id, owner, ttl_seconds, changed=_always)

    async def renew_lease(self, lease: Lease, *, ttl_seconds: float) -> Lease:
        done = "the lease was not renewed"
        return await self._tx(done, tx.renew_lease, lease, ttl_seconds, changed=_always)

    async def release_lease(self, lease: Lease) -> None:
        params = (lease.run_id, lease.owner, lease.epoch)
        done = "the lease was not released (it expires on its own)"
        await self._tx(done, tx.row_count, q(sql.RELEASE_LEASE), params, changed=bool)

    async def claim(
        self,
        owner: str,
        *,
        limit: int,
        ttl_seconds: float,
        queues: Sequence[str] | None = None,
    ) -> list[Claim]:
        if limit <= 0:
            return []
        done = "no run was claimed"
        return await self._tx(done, tx.claim, owner, limit, ttl_seconds, queues, changed=bool)

    async def check_writable(self) -> None:
        consequence = (
            "this process cannot write to it, so it cannot drive or steer runs: grant its role "
            "SELECT, INSERT, UPDATE and DELETE on Podium's tables (runs, events, signals, "
            "position_counter), or point it at a writable primary"
        )
        await self._tx(consequence, tx.write_nothing)

    # -- signals and retention ------------------------------------------------------------------

    async def post_signal(self, run_id: str, kind: SignalKind, payload: dict[str, Any]) -> int:
        text = json.dumps(payload)
        done = "the signal was not posted"
        return await self._tx(done, tx.insert_signal, run_id, kind, text, changed=_always)

    async def pending_signals(self, run_id: str) -> list[Signal]:
        rows = await self._read(tx.pending_rows, run_id)
        return [
            Signal(signal_id, run_id, kind, json.loads(payload), sql.to_instant(created_at))
            for signal_id, _, kind, payload, created_at in rows
        ]

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
            return await self._read(tx.prunable, wanted, cutoff, False)
        return await self._tx("nothing was pruned", tx.prune, wanted, cutoff, changed=bool)

    # -- lifecycle ------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the listening connection and the pool; calls made afterwards are refused."""
        if self._closed:
            return
        self._closed = True
        await self._watch.close()
        await self._pool.close()


def _always(_: object) -> bool:
    return True
