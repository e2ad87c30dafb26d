"""The store matrix: every contract test runs once per backend (Postgres joins this list later).

A `Backend` is a store plus what the contract needs around it: a way to let time pass on the
store's clock (a FakeClock for memory, real time for SQLite, so TTLs there are short) and a second
handle on the same data (another store object on the same file for SQLite).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from podium.core.events import RunCreated
from podium.store.base import EventStore
from podium.store.memory import MemoryEventStore
from podium.store.sqlite import SQLiteEventStore
from podium.testing import FakeClock

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
SHORT_SECONDS = 0.5
"""A TTL or timer that must not run out while a test looks (SQLite uses real time)."""
PAST_SHORT_SECONDS = 0.6


@dataclass
class Backend:
    name: str
    store: EventStore
    advance: Callable[[float], Awaitable[None]]
    """Let `seconds` pass on the store's clock."""
    _open_other: Callable[[], Awaitable[EventStore]]
    _others: list[EventStore] = field(default_factory=list)

    async def other(self) -> EventStore:
        """Another handle on the same data, as a second process would have."""
        opened = await self._open_other()
        self._others.append(opened)
        return opened

    async def close(self) -> None:
        for opened in [*self._others, self.store]:
            await opened.close()


async def _memory(_: Path) -> Backend:
    clock = FakeClock(datetime.now(UTC))
    store = MemoryEventStore(clock=clock)

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    async def same() -> EventStore:
        return store

    return Backend("memory", store, advance, same)


async def _sqlite(tmp_path: Path) -> Backend:
    path = tmp_path / "store" / "podium.db"

    async def reopen() -> EventStore:
        return await SQLiteEventStore.open(path)

    return Backend("sqlite", await reopen(), asyncio.sleep, reopen)


BACKENDS: list[tuple[str, Callable[[Path], Awaitable[Backend]]]] = [
    ("memory", _memory),
    ("sqlite", _sqlite),
]


@pytest.fixture(params=[factory for _, factory in BACKENDS], ids=[n for n, _ in BACKENDS])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    opened: Backend = await request.param(tmp_path)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def store(backend: Backend) -> EventStore:
    return backend.store


def created(run_id: str, at: datetime = T0) -> RunCreated:
    return RunCreated(
        at=at,
        run_id=run_id,
        workflow={"name": "wf", "steps": [{"id": "a", "kind": "shell"}]},
        inputs={"n": 1},
        workspace=f"/tmp/ws/{run_id}",
    )


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)
