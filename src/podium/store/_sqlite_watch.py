"""Noticing commits to a SQLite file from any connection: `PRAGMA data_version`, polled.

The watch has its own connection, which never writes, used only on the event loop's thread: each
check is one non-blocking pragma (about a microsecond; busy_timeout 0, so it never waits for a
lock), so the loop is never blocked and the store's worker thread never held. Polling runs only
while somebody waits: every 2 ms at first, the interval growing by half each quiet check up to
25 ms, and back to 2 ms after every change. So a commit by another process is noticed within about
25 ms (plus the loop's own latency); this store's own commits are announced at once (`poke`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from podium.store._changes import ChangeSignal

FIRST_POLL_SECONDS = 0.002
LAST_POLL_SECONDS = 0.025


class DataVersionWatch:
    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
        self.signal = ChangeSignal()
        self._version = self._read()
        self._poller: asyncio.Task[None] | None = None

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn

    def token(self) -> int:
        """The generation to wait on: taken after a fresh check, so an earlier commit is not
        mistaken for one made after this call."""
        self.check()
        return self.signal.generation

    async def wait(self, token: int, timeout_seconds: float) -> bool:
        # The poller first looks for waiters after its first sleep: ours is registered by then.
        self._ensure_polling()
        return await self.signal.wait(token, timeout_seconds)

    def poke(self) -> None:
        """This store committed: wake the waiters now (and do not wake them again for it)."""
        self._version = self._read() or self._version
        self.signal.fire()

    def check(self) -> bool:
        """Fire if the file changed since the last check; True if it did."""
        version = self._read()
        if version is None or version == self._version:
            return False
        self._version = version
        self.signal.fire()
        return True

    def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        self._conn.close()

    def _read(self) -> int | None:
        try:
            row = self._conn.execute("PRAGMA data_version").fetchone()
        except sqlite3.OperationalError:
            return None  # busy (a recovery in progress): look again at the next poll
        return int(row[0])

    def _ensure_polling(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        interval = FIRST_POLL_SECONDS
        with contextlib.suppress(sqlite3.ProgrammingError):  # the watch was closed
            while self.signal.has_waiters:
                await asyncio.sleep(interval)
                changed = self.check()
                interval = FIRST_POLL_SECONDS if changed else min(interval * 1.5, LAST_POLL_SECONDS)
