"""SQLite migrations: a version-1 file upgrades in place; a newer schema is refused everywhere."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import timedelta
from importlib import resources
from pathlib import Path

import pytest

from podium.core.events import Event, RunResumed, StepStarted
from podium.errors import StoreUnavailableError
from podium.store.base import EventStore, Lease
from podium.store.sqlite import SQLiteEventStore

from .conftest import T0, created, later

V1_SCRIPT = resources.files("podium.store").joinpath("migrations", "sqlite", "0001_init.sql")


def _as_version_1_wrote(event: Event) -> bytes:
    """Rows written before `at` left the JSON: the time in the JSON too (it must still read)."""
    return event.__pydantic_serializer__.to_json(event, exclude_defaults=True)


def build_v1(path: Path) -> None:
    """A store file as Podium with schema 1 left it: one run with events and a pending signal."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(V1_SCRIPT.read_text("utf-8"))
    conn.executescript(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL);"
        "INSERT INTO schema_migrations VALUES (1, 0);"
    )
    event = created("run_old")
    conn.execute(
        "INSERT INTO runs (run_id, workflow_name, status, created_at, updated_at, last_seq, owner,"
        " epoch, lease_expires_at) VALUES ('run_old', 'wf', 'waiting', ?, ?, 1, NULL, 3, NULL)",
        (T0.timestamp(), T0.timestamp()),
    )
    conn.execute(
        "INSERT INTO events VALUES ('run_old', 1, ?, ?, ?)",
        (event.kind, T0.timestamp(), _as_version_1_wrote(event)),
    )
    conn.execute(
        "INSERT INTO signals (run_id, kind, payload, created_at) VALUES ('run_old', 'retry', ?, ?)",
        ('{"step_id": "a"}', T0.timestamp()),
    )
    conn.close()


async def test_a_version_1_file_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    build_v1(path)

    store = await SQLiteEventStore.open(path)
    try:
        record = await store.get_run("run_old")
        assert (record.status, record.epoch, record.last_seq, record.wake_at) == (
            "waiting",
            3,
            1,
            None,
        )
        assert [s.event for s in await store.read("run_old")] == [created("run_old")]
        [(position, numbered)] = await store.read_all()  # 0004 numbered the old events
        assert (position, numbered.run_id, numbered.seq) == (1, "run_old", 1)
        [signal] = await store.pending_signals("run_old")
        assert (signal.kind, signal.payload) == ("retry", {"step_id": "a"})
        assert record.queue == "default"  # 0005: runs from before queues are on `default`
        [claim] = await store.claim("w-host:1:x", limit=5, ttl_seconds=30, queues=["default"])
        assert (claim.lease.run_id, claim.reason, claim.lease.epoch) == ("run_old", "signalled", 4)
        wake_at = T0 + timedelta(hours=1)
        await store.append("run_old", [], expected_seq=1, epoch=4, wake_at=wake_at)
        assert (await store.get_run("run_old")).wake_at == wake_at
    finally:
        await store.close()

    conn = sqlite3.connect(path)
    versions = conn.execute("SELECT version FROM schema_migrations").fetchall()
    assert versions == [(1,), (2,), (3,), (4,), (5,)]
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"runs_by_wake", "runs_by_workflow", "signals_pending", "runs_by_thread"} <= indexes
    assert "events_by_position" in indexes
    conn.close()


async def test_a_current_file_is_opened_without_the_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "podium.db"
    store = await SQLiteEventStore.open(path)
    await store.close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        reopened = await SQLiteEventStore.open(path, busy_seconds=0.2)
        await reopened.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def every_operation(store: EventStore, lease: Lease) -> dict[str, Callable[[], Awaitable[object]]]:
    event = StepStarted(at=later(1), step_id="a", attempt=1)
    return {
        "create_run": lambda: store.create_run(created("run_new"), workflow_name="wf"),
        "append": lambda: store.append("run_a", [event], expected_seq=1, epoch=lease.epoch),
        "read": lambda: store.read("run_a"),
        "get_run": lambda: store.get_run("run_a"),
        "list_runs": lambda: store.list_runs(),
        "acquire_lease": lambda: store.acquire_lease("run_a", lease.owner, ttl_seconds=30),
        "renew_lease": lambda: store.renew_lease(lease, ttl_seconds=30),
        "release_lease": lambda: store.release_lease(lease),
        "claim": lambda: store.claim("w-host:1:x", limit=5, ttl_seconds=30),
        "post_signal": lambda: store.post_signal("run_a", "cancel", {}),
        "pending_signals": lambda: store.pending_signals("run_a"),
        "prune": lambda: store.prune(),
        "wait_for_events": lambda: store.wait_for_events("run_a", after_seq=9, timeout_seconds=1),
        "wait_for_change": lambda: store.wait_for_change(timeout_seconds=1),
    }


async def test_a_newer_schema_is_refused_by_every_operation(tmp_path: Path) -> None:
    path = tmp_path / "podium.db"
    store = await SQLiteEventStore.open(path)
    try:
        await store.create_run(created("run_a"), workflow_name="wf")
        lease = await store.acquire_lease("run_a", "d-host:1:d", ttl_seconds=30)
        await store.append("run_a", [RunResumed(at=later(1))], expected_seq=1, epoch=lease.epoch)
        newer = sqlite3.connect(path, isolation_level=None)  # a newer Podium migrates the file
        newer.executescript(
            "BEGIN; CREATE TABLE runs_v99 (x);"
            " INSERT INTO schema_migrations VALUES (99, 0); COMMIT;"
        )
        newer.close()

        for name, operation in every_operation(store, lease).items():
            with pytest.raises(StoreUnavailableError, match=r"newer Podium \(schema 99") as caught:
                await operation()
            assert "upgrade podium" in str(caught.value), name
    finally:
        await store.close()


async def test_an_events_time_is_kept_once_beside_it_to_the_microsecond(tmp_path: Path) -> None:
    """`at` is the `at` column (Unix seconds), not a second copy in the JSON: ~36 bytes less
    per event; every microsecond still reads back."""
    path = tmp_path / "p.db"
    at = T0.replace(microsecond=987_654)
    store = await SQLiteEventStore.open(path)
    try:
        await store.create_run(created("run_t", at=at), workflow_name="wf")
        (stored,) = await store.read("run_t")
    finally:
        await store.close()
    assert stored.event.at == at
    conn = sqlite3.connect(path)
    try:
        (data,) = conn.execute("SELECT data FROM events WHERE run_id = 'run_t'").fetchone()
    finally:
        conn.close()
    assert b'"at"' not in data
