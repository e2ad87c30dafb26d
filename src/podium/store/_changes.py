"""Change notification shared by the stores: a generation counter that waiters block on.

A store fires it after each commit it notices (its own at once; other processes' through its
dialect's channel: SQLite's `PRAGMA data_version`, Postgres's LISTEN/NOTIFY). A waiter takes a
token (the generation) *before* it looks at the data, then waits for the generation to move.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from podium.store.base import StoredEvent


class ChangeSignal:
    """Fired on the event loop's thread; waiters on any loop are woken."""

    def __init__(self) -> None:
        self.generation = 0
        self._waiters: set[asyncio.Future[None]] = set()

    @property
    def has_waiters(self) -> bool:
        return bool(self._waiters)

    def fire(self) -> None:
        self.generation += 1
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            waiter.get_loop().call_soon_threadsafe(_wake, waiter)

    async def wait(self, token: int, timeout_seconds: float) -> bool:
        """True once the generation differs from `token`; False after `timeout_seconds`."""
        if self.generation != token:
            return True
        if timeout_seconds <= 0:
            return False
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait({waiter}, timeout=timeout_seconds)
        finally:
            self._waiters.discard(waiter)
            waiter.cancel()
        return self.generation != token


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def events_or_wait(
    read: Callable[[], Awaitable[list[StoredEvent]]],
    token: Callable[[], int],
    wait: Callable[[int, float], Awaitable[bool]],
    timeout_seconds: float,
) -> list[StoredEvent]:
    """`read()` until it returns events, waiting for a change between tries; [] on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(timeout_seconds, 0.0)
    while True:
        mark = token()
        events = await read()
        if events:
            return events
        remaining = deadline - loop.time()
        if remaining <= 0 or not await wait(mark, remaining):
            return []
