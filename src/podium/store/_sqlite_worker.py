"""The SQLite store's connection and the one worker thread that uses it.

Every call runs on the worker thread (or, for an idle connection's group commit, inline on the
loop), refuses a schema a newer Podium migrated to, and is retried with jittered backoff while
other processes hold the write lock, until its budget runs out.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

from podium.errors import RunNotFoundError, StoreError
from podium.store import _sql as sql
from podium.store._sqlite_commit import Busy
from podium.store._sqlite_open import (
    SLICE_SECONDS,
    BusyBudget,
    SchemaGuard,
    backoff_seconds,
    busy_error,
    failure,
    is_busy,
)

T = TypeVar("T")
_SLICE_MS = int(SLICE_SECONDS * 1000)


class Worker:
    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        executor: ThreadPoolExecutor,
        budget: BusyBudget,
        on_commit: Callable[[], None],
    ) -> None:
        self.path = path
        self.conn = conn
        self.budget = budget
        self._executor = executor
        self._guard = SchemaGuard(str(path), conn)
        self._on_commit = on_commit
        self._jobs = 0
        self.closed = False
        self.commits = 0

    def check_open(self) -> None:
        if self.closed:
            raise StoreError(f"the store at {self.path} is closed; open it again to use it")

    def check_schema(self, conn: sqlite3.Connection) -> None:
        try:
            self._guard.check(conn)
        except sqlite3.Error as exc:
            raise failure(self.path, exc) from exc

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._retrying(self.budget.seconds, "nothing was read", fn, *args)

    async def write(self, consequence: str, fn: Callable[..., T], *args: Any) -> T:
        """`fn` in a write transaction, retried for the busy budget."""
        budget = self.budget.seconds
        return await self._retrying(budget, consequence, self.transaction, fn, *args)

    async def write_run(self, fn: Callable[..., T], *args: Any) -> T:
        """A write to a run that exists (its lease): it keeps trying for longer."""
        budget, consequence = self.budget.progress_seconds, "the lease was not changed"
        return await self._retrying(budget, consequence, self.transaction, fn, *args)

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
                    raise busy_error(self.path, budget_seconds, consequence) from None
            await asyncio.sleep(backoff_seconds(attempt))
            attempt += 1

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        self.check_open()
        loop = asyncio.get_running_loop()
        job = self._executor.submit(self.guarded, fn, *args)
        self._jobs += 1  # the connection is the worker's until the job ends: no inline commits
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self._job_done))
        return await asyncio.wrap_future(job, loop=loop)

    def _job_done(self) -> None:
        self._jobs -= 1

    def on_thread(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """`fn` on the worker thread, once (a group commit retries its batch itself)."""
        self._jobs += 1
        done = asyncio.get_running_loop().run_in_executor(self._executor, self.guarded, fn, *args)
        done.add_done_callback(lambda _: self._job_done())
        return done

    def inline(self, fn: Callable[..., T], *args: Any) -> T | None:
        """`fn` on the loop's thread if the worker is idle, never waiting for a lock another
        process holds: None (nothing written) when it would have to; StoreErrors propagate."""
        if self._jobs:
            return None
        self.conn.execute("PRAGMA busy_timeout = 0")
        try:
            return self.guarded(fn, *args)
        except Busy:
            return None
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {_SLICE_MS}")

    def guarded(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn` on the connection, refusing a newer schema and turning driver errors into
        StoreErrors (a lock held elsewhere for a whole slice into Busy: retried)."""
        try:
            self._guard.check(self.conn)
            return fn(*args)
        except sqlite3.Error as exc:
            if is_busy(exc):
                raise Busy(str(exc)) from exc
            raise failure(self.path, exc) from exc

    def transaction(self, fn: Callable[..., T], *args: Any) -> T:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(*args)
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.commits += 1
        self._on_commit()
        return result

    def fetch_one(self, query: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        return cast(tuple[Any, ...] | None, self.conn.execute(query, params).fetchone())

    def fetch_all(self, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self.conn.execute(query, params).fetchall()

    def require_run(self, run_id: str) -> None:
        if self.conn.execute(sql.RUN_EXISTS, (run_id,)).fetchone() is None:
            raise RunNotFoundError(run_id)

    async def close(self) -> None:
        self.closed = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self.conn.close)
        self._executor.shutdown(wait=True)
