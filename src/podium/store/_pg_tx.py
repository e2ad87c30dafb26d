"""The Postgres store's transaction bodies: each takes the connection first and runs inside the
one transaction `PostgresEventStore` opens for a call (and retries whole).

Shared `_sql` queries are used as they are (through `q`); what Postgres needs of its own is here:
row locks (`FOR UPDATE`, `SKIP LOCKED`), positions from the counter row, the database clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from podium.errors import (
    ConcurrencyError,
    LeaseHeldError,
    RunExistsError,
    RunNotFoundError,
    ThreadBusyError,
)
from podium.store import _batch as batch
from podium.store import _sql as sql
from podium.store._pg_open import Conn, q
from podium.store.base import (
    Claim,
    Lease,
    RunRecord,
    ThreadRecord,
    local_owner_prefix,
    taken_from,
)

_NOW = "SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8"
_LOCK_RUN = "SELECT last_seq, epoch FROM runs WHERE run_id = %s FOR UPDATE"
_LOCK_LEASE = "SELECT owner, epoch, lease_expires_at FROM runs WHERE run_id = %s FOR UPDATE"
# Serializes exclusive creates on one thread, so two cannot both find it idle.
_LOCK_THREAD = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
_INSERT_RUN = q(sql.INSERT_RUN) + " ON CONFLICT (run_id) DO NOTHING"
# Bumps the counter and inserts the rows numbered from it in one statement: one round trip with
# the counter row locked instead of two, as the lock is held to commit by every writer in turn.
_INSERT_NUMBERED = (
    "WITH taken AS (UPDATE position_counter SET last = last + %(n)s WHERE id = 1 RETURNING last)"
    " INSERT INTO events (run_id, seq, kind, at, data, position)"
    " SELECT r.run_id, r.seq, r.kind, r.at, r.data, taken.last - %(n)s + r.i"
    " FROM taken, unnest(%(run_id)s::text[], %(seq)s::int[], %(kind)s::text[],"
    " %(at)s::float8[], %(data)s::bytea[]) WITH ORDINALITY AS r (run_id, seq, kind, at, data, i)"
)
LAST_POSITION = "SELECT last FROM position_counter WHERE id = 1"
_INSERT_SIGNAL = q(sql.INSERT_SIGNAL) + " RETURNING id"
_ON_QUEUES = " AND r.queue = ANY(?)"  # a list of names, adapted to a text[]
_SKIP_LOCKED = " FOR UPDATE OF r SKIP LOCKED"
# (any queue, some queues) -> the claim queries, built once
_CLAIM_FREE = (q(sql.claim_free("")) + _SKIP_LOCKED, q(sql.claim_free(_ON_QUEUES)) + _SKIP_LOCKED)
_CLAIM_LOCAL = (q(sql.claim_local("")), q(sql.claim_local(_ON_QUEUES)))
_SHARE_RUN = "SELECT 1 FROM runs WHERE run_id = %s FOR KEY SHARE"
_LOCK_IF_UNCHANGED = "SELECT 1 FROM runs WHERE run_id = %s AND epoch = %s FOR UPDATE SKIP LOCKED"


async def db_now(conn: Conn) -> float:
    return float(await fetch_one(conn, _NOW))


async def fetch_one(conn: Conn, query: str, params: Sequence[Any] = ()) -> Any:
    row = await (await conn.execute(query, params)).fetchone()
    return None if row is None else row[0]


async def fetch_all(conn: Conn, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    return await (await conn.execute(query, params)).fetchall()


async def require_run(conn: Conn, run_id: str) -> None:
    if await fetch_one(conn, q(sql.RUN_EXISTS), (run_id,)) is None:
        raise RunNotFoundError(run_id)


async def create_run(conn: Conn, request: batch.CreateRun, ttl_seconds: float) -> float | None:
    if await fetch_one(conn, q(sql.RUN_EXISTS), (request.run_id,)) is not None:
        raise RunExistsError(request.run_id)
    if request.thread is not None:
        await conn.execute(_LOCK_THREAD, (request.thread,))
        live = await fetch_one(conn, q(sql.LIVE_ON_THREAD), (request.thread,))
        if request.exclusive and live is not None:
            raise ThreadBusyError(request.thread, live)
    leased = request.owner is not None
    expires = await db_now(conn) + ttl_seconds if leased else None
    created_at, updated_at = request.rows[0][3], request.rows[-1][3]
    params = (request.run_id, request.workflow_name, created_at, updated_at, len(request.rows))
    run = (*params, 1 if leased else 0, request.owner, expires, request.thread, request.queue)
    if (await conn.execute(_INSERT_RUN, run)).rowcount == 0:
        raise RunExistsError(request.run_id)  # created by another process just now
    await insert_events(conn, request.rows)
    return expires


async def append(conn: Conn, request: batch.AppendEvents) -> int:
    row = await (await conn.execute(_LOCK_RUN, (request.run_id,))).fetchone()
    if row is None:
        raise RunNotFoundError(request.run_id)
    position = (int(row[0]), int(row[1]))
    if position != (request.expected_seq, request.epoch):
        message = sql.stale_message(request.run_id, position, request.expected_seq, request.epoch)
        raise ConcurrencyError(message)
    last_seq = request.expected_seq + len(request.rows)
    updated_at = request.rows[-1][3] if request.rows else None
    update = (last_seq, updated_at, request.status, request.wake_at, request.run_id)
    await conn.execute(q(sql.UPDATE_RUN_AFTER_APPEND), update)
    if request.consumed:
        now = await db_now(conn)
        consumed = [(now, signal_id, request.run_id) for signal_id in request.consumed]
        async with conn.cursor() as cur:
            await cur.executemany(q(sql.CONSUME_SIGNAL), consumed)
    await insert_events(conn, request.rows)  # last: the counter row stays locked until commit
    return last_seq


# -- after a lost connection ------------------------------------------------------------------
# A transaction whose COMMIT was sent but never acknowledged may have committed. Its retry first
# looks for what it would have written: found, the write is reported done instead of refused as
# a duplicate (RunExistsError) or a stale append (ConcurrencyError) of itself.

_FIRST_EVENTS = (
    "SELECT kind, at, data FROM events WHERE run_id = %s AND seq > %s ORDER BY seq LIMIT %s"
)


async def _recorded(
    conn: Conn, run_id: str, after_seq: int, rows: Sequence[batch.EventRow]
) -> bool:
    """Whether the run's events after `after_seq` begin with exactly `rows`."""
    found = await fetch_all(conn, _FIRST_EVENTS, (run_id, after_seq, len(rows)))
    wanted = [(kind, at, data) for _, _, kind, at, data in rows]
    return [(kind, at, bytes(data)) for kind, at, data in found] == wanted


async def create_run_again(
    conn: Conn, request: batch.CreateRun, ttl_seconds: float
) -> float | None:
    row = await fetch_row(conn, _LOCK_LEASE, (request.run_id,))
    if row is not None and await _recorded(conn, request.run_id, 0, request.rows):
        return float(row[2]) if request.owner is not None and row[2] is not None else None
    return await create_run(conn, request, ttl_seconds)


async def append_again(conn: Conn, request: batch.AppendEvents) -> int:
    row = await fetch_row(conn, _LOCK_RUN, (request.run_id,))
    done = request.expected_seq + len(request.rows)
    if (
        row is not None
        and request.rows
        and (int(row[0]), int(row[1])) == (done, request.epoch)
        and await _recorded(conn, request.run_id, request.expected_seq, request.rows)
    ):
        return done
    return await append(conn, request)


async def fetch_row(conn: Conn, query: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    return await (await conn.execute(query, params)).fetchone()


async def row_count(conn: Conn, query: str, params: Sequence[Any]) -> int:
    return (await conn.execute(query, params)).rowcount


async def insert_events(conn: Conn, rows: Sequence[batch.EventRow]) -> None:
    """Insert `rows` with the next global positions (see the module docstring for why from the
    counter row: its lock, held to commit, orders positions by commit)."""
    if not rows:
        return
    run_ids, seqs, kinds, ats, datas = zip(*rows, strict=True)
    columns = {"run_id": run_ids, "seq": seqs, "kind": kinds, "at": ats, "data": datas}
    await conn.execute(
        _INSERT_NUMBERED, {"n": len(rows), **{k: list(v) for k, v in columns.items()}}
    )


async def read_rows(conn: Conn, run_id: str, after_seq: int) -> list[tuple[Any, ...]]:
    rows = await fetch_all(conn, q(sql.READ_EVENTS), (run_id, after_seq))
    if not rows:
        await require_run(conn, run_id)
    return [(kind, at, bytes(data), seq) for kind, at, data, seq in rows]


async def page(
    conn: Conn,
    statuses: list[str] | None,
    workflow_name: str | None,
    limit: int,
    after: str | None,
    thread: str | None,
) -> list[tuple[Any, ...]]:
    cursor = None
    if after is not None:
        cursor = await fetch_row(conn, q(sql.RUN_CURSOR), (after,))
        if cursor is None:
            raise RunNotFoundError(after)
    if statuses == [] or limit <= 0:
        return []
    at = (cursor[0], cursor[1]) if cursor is not None else None
    query, params = sql.list_runs_query(statuses, workflow_name, at, limit, thread)
    return await fetch_all(conn, q(query), params)


async def threads(conn: Conn, limit: int) -> list[ThreadRecord]:
    found = []
    for thread, runs, _ in await fetch_all(conn, q(sql.LIST_THREADS), (max(limit, 0),)):
        newest = await fetch_row(conn, q(sql.NEWEST_ON_THREAD), (thread,))
        if newest is not None:  # None: pruned between the two reads
            found.append(ThreadRecord(thread, int(runs), sql.run_record(newest)))
    return found


async def take_lease(conn: Conn, run_id: str, owner: str, ttl_seconds: float) -> Lease:
    row = await fetch_row(conn, _LOCK_LEASE, (run_id,))
    if row is None:
        raise RunNotFoundError(run_id)
    holder, epoch, expires = row
    now = await db_now(conn)
    if not sql.lease_is_takeable(holder, sql.maybe_instant(expires), owner, sql.to_instant(now)):
        raise LeaseHeldError(run_id, holder or "")
    expires_at = sql.to_instant(now + ttl_seconds)
    lease = Lease(run_id, owner, epoch + 1, expires_at, taken_from(holder, owner))
    await conn.execute(q(sql.TAKE_LEASE), (owner, lease.epoch, now + ttl_seconds, run_id))
    return lease


async def renew_lease(conn: Conn, lease: Lease, ttl_seconds: float) -> Lease:
    expires = await db_now(conn) + ttl_seconds
    params = (expires, lease.run_id, lease.owner, lease.epoch)
    if await row_count(conn, q(sql.RENEW_LEASE), params) == 0:
        row = await fetch_row(conn, q(sql.LEASE_STATE), (lease.run_id,))
        if row is None:
            raise RunNotFoundError(lease.run_id)
        raise ConcurrencyError(sql.lost_lease_message(lease, row[0], row[1]))
    return replace(lease, expires_at=sql.to_instant(expires))


async def claim(
    conn: Conn, owner: str, limit: int, ttl_seconds: float, queues: Sequence[str] | None
) -> list[Claim]:
    """Free candidates are locked as they are picked (SKIP LOCKED: another claimer's are passed
    over), so no two transactions can both take one; a row another claimer took and committed
    meanwhile is re-checked by Postgres against the lease condition and dropped.

    Live leases of this host's other processes are read without a lock (most are alive, and
    locking them would hold up their drivers' appends); one whose process died is locked only
    if nobody holds it and its epoch is still the one read, else passed over."""
    now = await db_now(conn)
    wanted: tuple[Any, ...] = () if queues is None else (list(queues),)
    some = bool(wanted)
    free_params = sql.claim_free_params(now, limit, wanted)
    free = await fetch_all(conn, _CLAIM_FREE[some], free_params)
    local_params = sql.claim_local_params(now, local_owner_prefix(), owner, wanted)
    local = await fetch_all(conn, _CLAIM_LOCAL[some], local_params)
    unlocked = {row[0] for row in local} - {row[0] for row in free}
    expires = now + ttl_seconds
    claims = []
    for candidate in sql.claim_candidates(free, local, limit):
        if candidate.run_id in unlocked:
            params = (candidate.run_id, candidate.epoch)
            if await fetch_one(conn, _LOCK_IF_UNCHANGED, params) is None:
                continue
        holder = taken_from(candidate.holder, owner)
        lease = Lease(candidate.run_id, owner, candidate.epoch + 1, sql.to_instant(expires), holder)
        await conn.execute(q(sql.TAKE_LEASE), (owner, lease.epoch, expires, lease.run_id))
        claims.append(Claim(lease, candidate.reason))
    return claims


_WRITE_NOTHING = (
    "UPDATE runs SET epoch = epoch WHERE false",
    "INSERT INTO events SELECT * FROM events WHERE false",
    "UPDATE signals SET consumed_at = consumed_at WHERE false",
    "DELETE FROM signals WHERE false",
    "DELETE FROM runs WHERE false",
    "UPDATE position_counter SET last = last WHERE false",
)


async def write_nothing(conn: Conn) -> None:
    """Every kind of write the store makes, to no row: the privileges (and a read-only
    transaction) are checked as for a real write, and nothing changes."""
    for statement in _WRITE_NOTHING:
        await conn.execute(statement)


async def insert_signal(conn: Conn, run_id: str, kind: str, payload: str) -> int:
    """The run's row is share-locked first: a prune passes over it while we hold it (it skips
    locked rows), and the committed signal then keeps the run; a prune that locked it first has
    deleted it when our lock is granted, and the signal is refused as for any unknown run."""
    if await fetch_one(conn, _SHARE_RUN, (run_id,)) is None:
        raise RunNotFoundError(run_id)
    return int(await fetch_one(conn, _INSERT_SIGNAL, (run_id, kind, payload, await db_now(conn))))


async def pending_rows(conn: Conn, run_id: str) -> list[tuple[Any, ...]]:
    await require_run(conn, run_id)
    return await fetch_all(conn, q(sql.PENDING_SIGNALS), (run_id,))


async def prunable(
    conn: Conn, statuses: list[str], cutoff: float | None, lock: bool
) -> list[RunRecord]:
    """Runs `lock`ed while being pruned are passed over (SKIP LOCKED): they are being written."""
    query, params = sql.prune_query(statuses, cutoff)
    rows = await fetch_all(conn, q(query) + (_SKIP_LOCKED if lock else ""), params)
    now = sql.to_instant(await db_now(conn))
    records = [sql.run_record(row) for row in rows]
    return [r for r in records if sql.lease_is_free(r.owner, r.lease_expires_at, now)]


async def prune(conn: Conn, statuses: list[str], cutoff: float | None) -> list[RunRecord]:
    doomed = await prunable(conn, statuses, cutoff, True)
    run_ids = [(record.run_id,) for record in doomed]
    if run_ids:
        async with conn.cursor() as cur:
            for statement in (sql.DELETE_SIGNALS, sql.DELETE_EVENTS, sql.DELETE_RUN):
                await cur.executemany(q(statement), run_ids)
    return doomed
