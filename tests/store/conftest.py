"""The store matrix: every contract test runs once per backend: memory, SQLite and Postgres.

A `Backend` is a store plus what the contract needs around it: a way to let time pass on the
store's clock (a FakeClock for memory, real time for SQLite and Postgres, so TTLs there are short)
and a second handle on the same data (another store object on the same file or database).

Postgres: the server is the session's `postgres_server` (tests/conftest.py):
$PODIUM_TEST_POSTGRES_URL, else the machine's cluster at 127.0.0.1:5432, else a private cluster
the session starts (force one with PODIUM_TEST_POSTGRES_URL=private). The session creates a
database of its own there, each test a fresh schema in it (named in the URL's search_path: the
`postgres_url` fixture), and the database is dropped at the end. With no server and no binaries
to start one the postgres cases are skipped, saying why (they fail instead when
PODIUM_REQUIRE_POSTGRES=1, which .ci/run sets).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.pg_cluster import new_schema

from podium.core.events import RunCreated
from podium.store.base import EventStore
from podium.store.memory import MemoryEventStore
from podium.store.postgres import PostgresEventStore
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


async def _memory(_: Path, __: pytest.FixtureRequest) -> Backend:
    clock = FakeClock(datetime.now(UTC))
    store = MemoryEventStore(clock=clock)

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    async def same() -> EventStore:
        return store

    return Backend("memory", store, advance, same)


async def _sqlite(tmp_path: Path, _: pytest.FixtureRequest) -> Backend:
    path = tmp_path / "store" / "podium.db"

    async def reopen() -> EventStore:
        return await SQLiteEventStore.open(path)

    return Backend("sqlite", await reopen(), asyncio.sleep, reopen)


async def _postgres(_: Path, request: pytest.FixtureRequest) -> Backend:
    url = await new_schema(request.getfixturevalue("postgres_database"))

    async def reopen() -> EventStore:
        return await PostgresEventStore.open(url)

    return Backend("postgres", await reopen(), asyncio.sleep, reopen)


BACKENDS: list[tuple[str, Callable[[Path, pytest.FixtureRequest], Awaitable[Backend]]]] = [
    ("memory", _memory),
    ("sqlite", _sqlite),
    ("postgres", _postgres),
]


@pytest.fixture(params=[factory for _, factory in BACKENDS], ids=[n for n, _ in BACKENDS])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    opened: Backend = await request.param(tmp_path, request)
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
