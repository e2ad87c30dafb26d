"""Noticing commits to a Postgres store from any process: LISTEN/NOTIFY on one channel.

Every committing write of a store sends `pg_notify(channel, '')` inside its transaction, so the
notification is delivered when (and only if) it commits. Each store object keeps one dedicated
connection that LISTENs on the channel and fires its ChangeSignal on every notification; its own
commits fire the signal at once instead. Their notifications carry the store's `origin` and are
not fired again when they come back: a wait that begins after this store's own commit is not
woken by that commit's echo (as SQLite's `poke`). The channel is named after the store's schema, so
Podium stores in other schemas of the same database do not wake it.

If the listening connection is lost (a server restart), it is reopened with backoff, and the
signal fires once it listens again: a commit made while nobody listened is not missed, since
waiters then re-check the data.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

import psycopg
from psycopg import sql as pgsql

from podium.store._changes import ChangeSignal
from podium.store._pg_open import CONNECT_TIMEOUT_SECONDS, Conn, backoff_seconds

NOTIFY = "SELECT pg_notify(%s, %s)"


def channel_for(schema: str) -> str:
    """The notification channel of the store whose tables are in `schema` (at most 63 bytes)."""
    return f"podium:{schema}"[:63]


class NotifyWatch:
    """Start with `await watch.start(conn)`, handing over a connection in autocommit mode."""

    def __init__(self, url: str, channel: str) -> None:
        self._url = url
        self.channel = channel
        self.signal = ChangeSignal()
        self.origin = os.urandom(8).hex()
        """The payload of this store's own notifications."""
        self._task: asyncio.Task[None] | None = None
        self._conn: Conn | None = None

    def token(self) -> int:
        return self.signal.generation

    async def wait(self, token: int, timeout_seconds: float) -> bool:
        return await self.signal.wait(token, timeout_seconds)

    async def start(self, conn: Conn) -> None:
        await self._listen(conn)
        self._task = asyncio.get_running_loop().create_task(self._run(conn))

    async def _listen(self, conn: Conn) -> None:
        self._conn = conn
        await conn.execute(pgsql.SQL("LISTEN {}").format(pgsql.Identifier(self.channel)))

    async def _run(self, conn: Conn) -> None:
        attempt = 0
        while True:
            try:
                async for note in conn.notifies():
                    attempt = 0
                    if note.payload != self.origin:
                        self.signal.fire()
            except psycopg.Error:
                pass  # the connection was lost: listen again on a new one
            await conn.close()
            conn = await self._reconnect(attempt)
            attempt += 1
            self.signal.fire()  # something may have committed while nobody listened

    async def _reconnect(self, attempt: int) -> Conn:
        while True:
            await asyncio.sleep(backoff_seconds(attempt))
            attempt += 1
            conn: Conn | None = None
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
                )
                await self._listen(conn)
            except psycopg.Error:
                if conn is not None:
                    await conn.close()
                continue
            return conn

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            await self._conn.close()
