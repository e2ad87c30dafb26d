"""The store matrix: every contract test runs once per factory (Postgres joins this list later)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from podium.core.events import RunCreated
from podium.store.base import EventStore
from podium.store.memory import MemoryEventStore
from podium.store.sqlite import SQLiteEventStore

StoreFactory = Callable[[Path], Awaitable[EventStore]]

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


async def _memory(_: Path) -> EventStore:
    return MemoryEventStore()


async def _sqlite(tmp_path: Path) -> EventStore:
    return await SQLiteEventStore.open(tmp_path / "store" / "podium.db")


STORE_FACTORIES: list[tuple[str, StoreFactory]] = [("memory", _memory), ("sqlite", _sqlite)]


@pytest.fixture(
    params=[factory for _, factory in STORE_FACTORIES], ids=[n for n, _ in STORE_FACTORIES]
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    opened = await request.param(tmp_path)
    try:
        yield opened
    finally:
        await opened.close()


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
