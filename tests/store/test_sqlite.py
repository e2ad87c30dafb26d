"""What only the SQLite store promises: a durable file, clear open errors, many writers."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from podium.core.events import RunResumed, StepStarted
from podium.errors import ConcurrencyError, StoreError, StoreUnavailableError
from podium.store.sqlite import SQLiteEventStore

from .conftest import created, later

CHILD_APPEND = """
import asyncio, sys
from datetime import UTC, datetime
from podium.core.events import StepStarted
from podium.store.sqlite import SQLiteEventStore

async def main():
    store = await SQLiteEventStore.open(sys.argv[1])
    event = StepStarted(at=datetime.now(UTC), step_id="child", attempt=1)
    print(await store.append("run_a", [event], expected_seq=int(sys.argv[2]), epoch=0))
    await store.close()

asyncio.run(main())
"""


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "podium.db"


async def open_with_a_run(path: Path) -> SQLiteEventStore:
    store = await SQLiteEventStore.open(path)
    await store.create_run(created("run_a"), workflow_name="wf")
    return store


async def test_the_file_persists_across_reopen(db_path: Path) -> None:
    store = await open_with_a_run(db_path)
    await store.append(
        "run_a", [RunResumed(at=later(1))], expected_seq=1, epoch=0, status="running"
    )
    await store.close()

    reopened = await SQLiteEventStore.open(db_path)
    try:
        assert [s.seq for s in await reopened.read("run_a")] == [1, 2]
        assert (await reopened.get_run("run_a")).status == "running"
    finally:
        await reopened.close()


async def test_the_file_is_sound_and_in_wal_mode(db_path: Path) -> None:
    store = await open_with_a_run(db_path)
    await store.close()

    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT version FROM schema_migrations").fetchall() == [
            (1,),
            (2,),
            (3,),
            (4,),
            (5,),
        ]
    conn.close()


async def test_a_closed_store_refuses_work(db_path: Path) -> None:
    store = await open_with_a_run(db_path)
    await store.close()
    await store.close()

    with pytest.raises(StoreError, match="closed"):
        await store.read("run_a")


async def test_a_directory_is_refused_quickly(tmp_path: Path) -> None:
    await _assert_refused(tmp_path, "directory")


async def test_a_file_that_is_not_a_database_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    await _assert_refused(path, "not a database")


async def test_a_database_with_a_damaged_header_is_refused_quickly(db_path: Path) -> None:
    store = await open_with_a_run(db_path)
    await store.close()
    with db_path.open("r+b") as file:
        file.write(b"\x00" * 100)
    await _assert_refused(db_path, "cannot open")


async def test_a_database_from_a_newer_podium_is_refused(db_path: Path) -> None:
    store = await open_with_a_run(db_path)
    await store.close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)")
    conn.close()

    await _assert_refused(db_path, r"newer Podium \(schema 99, this one knows 5\); upgrade podium")


async def _assert_refused(path: Path, match: str) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=match) as caught:
        await SQLiteEventStore.open(path)
    assert time.monotonic() - started < 1.0
    assert str(path) in str(caught.value)


async def test_concurrent_appends_share_commits(db_path: Path) -> None:
    store = await SQLiteEventStore.open(db_path)
    try:
        run_ids = [f"run_{i}" for i in range(50)]
        await asyncio.gather(*(store.create_run(created(r), workflow_name="wf") for r in run_ids))
        before = store.commits
        event = StepStarted(at=later(1), step_id="a", attempt=1)

        await asyncio.gather(*(store.append(r, [event], expected_seq=1, epoch=0) for r in run_ids))

        assert store.commits - before <= 2
    finally:
        await store.close()


async def test_two_connections_racing_on_one_run_have_one_winner(db_path: Path) -> None:
    first = await open_with_a_run(db_path)
    second = await SQLiteEventStore.open(db_path)
    try:
        event = StepStarted(at=later(1), step_id="a", attempt=1)
        results = await asyncio.gather(
            *(s.append("run_a", [event], expected_seq=1, epoch=0) for s in (first, second) * 3),
            return_exceptions=True,
        )
        assert results.count(2) == 1
        assert sum(isinstance(r, ConcurrencyError) for r in results) == 5
        assert len(await second.read("run_a")) == 2
    finally:
        await first.close()
        await second.close()


async def test_a_second_process_wins_and_the_stale_writer_is_refused(db_path: Path) -> None:
    store = await open_with_a_run(db_path)
    try:
        seq = (await store.get_run("run_a")).last_seq
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD_APPEND,
            str(db_path),
            str(seq),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await child.communicate()
        assert (child.returncode, out.strip()) == (0, b"2")

        with pytest.raises(ConcurrencyError):
            await store.append("run_a", [RunResumed(at=later(1))], expected_seq=seq, epoch=0)
        assert [s.event.kind for s in await store.read("run_a")] == ["run.created", "step.started"]
    finally:
        await store.close()
