"""A store this process cannot write to is refused when a worker or control engine opens it,
with what to fix, before anything is claimed: a read-only role, a read-only transaction (a hot
standby), against the real Postgres; the memory and SQLite stores of this process pass."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from podium.errors import StoreError
from podium.runtime.engine import Engine
from podium.store import open_store
from podium.store.base import EventStore

from .conftest import created, new_schema


async def test_the_stores_of_this_process_are_writable(store: EventStore) -> None:
    await store.check_writable()
    await store.create_run(created("run_a"), workflow_name="wf")  # and it wrote nothing itself
    assert [r.run_id for r in await store.list_runs()] == ["run_a"]


@pytest.fixture
async def read_only_url(postgres_database: str) -> AsyncIterator[tuple[str, str]]:
    """(a store's URL, the same store's URL as a role that may only read it)."""
    url = await new_schema(postgres_database)
    await (await open_store(url)).close()  # its tables, by the owner
    role = f"reader_{uuid.uuid4().hex[:8]}"
    schema = url.rsplit("%3D", 1)[1]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f'CREATE ROLE "{role}" LOGIN')
        await conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        await conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    try:
        yield url, urlunsplit(parts._replace(netloc=f"{role}@{host}"))
    finally:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute(f'DROP OWNED BY "{role}"')
            await conn.execute(f'DROP ROLE "{role}"')


async def test_a_worker_on_a_role_that_may_only_read_is_refused_at_start(
    read_only_url: tuple[str, str],
) -> None:
    owner_url, reader_url = read_only_url
    reader = await open_store(reader_url)
    try:
        assert await reader.list_runs() == []  # it may read
        with pytest.raises(StoreError, match="permission denied") as refused:
            await reader.check_writable()
    finally:
        await reader.close()
    said = str(refused.value)
    assert "cannot drive or steer runs" in said
    assert "grant its role SELECT, INSERT, UPDATE and DELETE" in said
    for mode in ("worker", "control"):
        with pytest.raises(StoreError, match="permission denied"):
            await Engine.open(reader_url, mode=mode)
    async with await Engine.open(reader_url, mode="local") as local:  # reads need no writes
        assert await local.list_runs() == []
    owner = await open_store(owner_url)
    try:
        assert await owner.list_runs() == []  # nothing was written by the checks
        await owner.check_writable()
    finally:
        await owner.close()


async def test_a_read_only_transaction_like_a_standby_is_refused(postgres_database: str) -> None:
    url = await new_schema(postgres_database)
    await (await open_store(url)).close()
    standby = url.replace("?options=", "?options=-cdefault_transaction_read_only%3Don%20")
    store = await open_store(standby)
    try:
        with pytest.raises(StoreError, match="read-only transaction"):
            await store.check_writable()
    finally:
        await store.close()


async def test_a_sqlite_file_is_checked_by_taking_its_write_lock(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "podium.db")
    try:
        await store.check_writable()
        assert await store.list_runs() == []
    finally:
        await store.close()
