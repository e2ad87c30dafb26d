"""SQLite while other connections hold the write lock: the busy budget, and what outlives it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from podium.core.events import RunResumed
from podium.errors import RunNotFoundError, StoreUnavailableError, UsageError
from podium.store.sqlite import SQLiteEventStore

from .conftest import created, later


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "podium.db"


@pytest.fixture
def holder(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A connection standing in for another process; `BEGIN IMMEDIATE` on it takes the lock."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    yield conn
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()


async def test_a_create_that_outlasts_the_budget_fails_before_the_run_exists(
    db_path: Path, holder: sqlite3.Connection
) -> None:
    store = await SQLiteEventStore.open(db_path, busy_seconds=0.3)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailableError) as caught:
            await store.create_run(created("run_a"), workflow_name="wf")
        holder.execute("ROLLBACK")

        message = str(caught.value)
        assert "locked by other processes for 0.3 s (the busy budget)" in message
        assert "no run was created" in message
        assert "PODIUM_SQLITE_BUSY_SECONDS" in message
        with pytest.raises(RunNotFoundError):
            await store.get_run("run_a")
    finally:
        await store.close()


async def test_an_append_keeps_trying_past_the_budget(
    db_path: Path, holder: sqlite3.Connection
) -> None:
    store = await SQLiteEventStore.open(db_path, busy_seconds=0.2)
    try:
        await store.create_run(created("run_a"), workflow_name="wf")
        holder.execute("BEGIN IMMEDIATE")
        asyncio.get_running_loop().call_later(0.8, holder.execute, "COMMIT")

        seq = await store.append("run_a", [RunResumed(at=later(1))], expected_seq=1, epoch=0)

        assert not holder.in_transaction  # the lock was held four budgets long
        assert seq == 2
        lease = await store.acquire_lease("run_a", "d-host:1:d", ttl_seconds=30)
        assert lease.epoch == 1
    finally:
        await store.close()


async def test_a_lock_held_elsewhere_waits_without_blocking_the_loop(
    db_path: Path, holder: sqlite3.Connection
) -> None:
    store = await SQLiteEventStore.open(db_path)
    try:
        await store.create_run(created("run_a"), workflow_name="wf")
        holder.execute("BEGIN IMMEDIATE")
        # Only a loop that keeps running while the append waits can let the holder go.
        asyncio.get_running_loop().call_later(0.1, holder.execute, "COMMIT")

        assert await store.append("run_a", [RunResumed(at=later(1))], expected_seq=1, epoch=0) == 2
    finally:
        await store.close()


async def test_a_file_that_needs_migrating_waits_for_the_lock_within_the_budget(
    db_path: Path, holder: sqlite3.Connection
) -> None:
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE other_tool (x)")  # holds the write lock on an empty file

    with pytest.raises(StoreUnavailableError, match=r"for 0.2 s \(the busy budget\)"):
        await SQLiteEventStore.open(db_path, busy_seconds=0.2)

    holder.execute("ROLLBACK")  # committed, the table would make it another application's file
    store = await SQLiteEventStore.open(db_path, busy_seconds=0.2)
    await store.close()


async def test_the_budget_comes_from_the_environment(
    db_path: Path, holder: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODIUM_SQLITE_BUSY_SECONDS", "0.25")
    store = await SQLiteEventStore.open(db_path)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailableError, match=r"for 0.25 s \(the busy budget\)"):
            await store.post_signal("run_a", "cancel", {})
    finally:
        holder.execute("ROLLBACK")
        await store.close()


@pytest.mark.parametrize("value", ["soon", "0", "-3"])
async def test_a_bad_budget_is_a_usage_error(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PODIUM_SQLITE_BUSY_SECONDS", value)

    with pytest.raises(UsageError, match="busy"):
        await SQLiteEventStore.open(db_path)
