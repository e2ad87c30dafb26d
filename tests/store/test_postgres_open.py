"""Opening a Postgres store: databases that are not (or no longer) Podium's, bad URLs, migrations
by many processes at once, and connections lost under a store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from urllib.parse import urlsplit

import psycopg
import pytest
from tests.pg_cluster import in_schema

from podium.core.events import StepStarted
from podium.errors import (
    ConcurrencyError,
    RunExistsError,
    StoreUnavailableError,
)
from podium.store import _batch as batch
from podium.store import _pg_tx as tx
from podium.store import open_store
from podium.store.postgres import PostgresEventStore

from .conftest import created, later
from .pg_proxy import Proxy

pytestmark = pytest.mark.timeout(120)


async def test_a_database_of_a_newer_podium_is_refused(postgres_url: str) -> None:
    store = await PostgresEventStore.open(postgres_url)
    await store.close()
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)")

    for create in (True, False):
        with pytest.raises(StoreUnavailableError, match=r"newer Podium \(schema 999, this one"):
            await open_store(postgres_url, create=create)


async def test_reading_commands_do_not_create_a_store(postgres_url: str) -> None:
    with pytest.raises(StoreUnavailableError, match="no Podium store at postgresql://"):
        await open_store(postgres_url, create=False)
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        found = await (await conn.execute("SELECT to_regclass('runs')")).fetchone()
    assert found == (None,)


async def test_another_applications_tables_are_left_alone(postgres_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE runs (id INTEGER)")

    with pytest.raises(StoreUnavailableError, match="is not a Podium store; it was left untouched"):
        await open_store(postgres_url)


@pytest.mark.parametrize(
    ("bad", "shown"),
    [
        ("postgresql://podium:s3cret@127.0.0.1:1/podium", "postgresql://podium:***@127.0.0.1:1/"),
        ("postgres://127.0.0.1:notaport/podium", "postgres://127.0.0.1:notaport/podium"),
        (
            "postgresql://127.0.0.1:5432/podium?password=s3cret&nonsense=1",
            "postgresql://127.0.0.1:5432/podium?password=***&nonsense=1",
        ),
    ],
)
async def test_an_unreachable_or_malformed_url_says_what_to_fix(bad: str, shown: str) -> None:
    with pytest.raises(StoreUnavailableError) as raised:
        await open_store(bad)

    message = str(raised.value)
    assert f"cannot connect to the Podium store at {shown}" in message
    assert "check that the Postgres server is running" in message
    assert "s3cret" not in message


async def test_lost_connections_are_replaced_and_waits_still_wake(postgres_url: str) -> None:
    store = await PostgresEventStore.open(postgres_url)
    writer = await PostgresEventStore.open(postgres_url)
    try:
        await store.create_run(created("run_a"), workflow_name="wf")
        await _kill_connections(postgres_url)  # as a server restart would: every session is gone

        assert (await store.get_run("run_a")).last_seq == 1
        follower = asyncio.create_task(
            store.wait_for_events("run_a", after_seq=1, timeout_seconds=30)
        )
        await asyncio.sleep(0.5)  # the follower's listener reconnects and listens again
        await writer.append(
            "run_a", [StepStarted(at=later(1), step_id="a", attempt=1)], expected_seq=1, epoch=0
        )
        assert [s.seq for s in await asyncio.wait_for(follower, 10)] == [2]
    finally:
        await store.close()
        await writer.close()


async def _kill_connections(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


async def test_processes_opening_a_new_database_at_once_migrate_it_once(postgres_url: str) -> None:
    opened = await asyncio.gather(*(PostgresEventStore.open(postgres_url) for _ in range(4)))
    try:
        await opened[0].create_run(created("run_a"), workflow_name="wf")
        assert [(await s.get_run("run_a")).last_seq for s in opened] == [1, 1, 1, 1]
    finally:
        for store in opened:
            await store.close()
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        rows = await (await conn.execute("SELECT version FROM schema_migrations")).fetchall()
    assert rows == [(1,), (2,)]


@pytest.fixture
async def proxy(postgres_database: str) -> AsyncIterator[Proxy]:
    server = urlsplit(postgres_database)
    through = Proxy(server.hostname or "127.0.0.1", server.port or 5432)
    await through.start()
    try:
        yield through
    finally:
        await through.stop()


def via(proxy: Proxy, url: str) -> str:
    """`url` with its host and port replaced by the proxy's, and a password shown as given."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"postgres:s3cret@127.0.0.1:{proxy.port}").geturl()


async def test_a_store_rides_out_a_server_restart(postgres_url: str, proxy: Proxy) -> None:
    store = await PostgresEventStore.open(via(proxy, postgres_url), retry_seconds=20)
    try:
        await store.create_run(created("run_a"), workflow_name="wf")
        await proxy.stop()  # every connection is dropped; the server is down for a moment
        asyncio.get_running_loop().call_later(0.5, lambda: asyncio.ensure_future(proxy.start()))

        events = [StepStarted(at=later(1), step_id="a", attempt=1)]
        assert await store.append("run_a", events, expected_seq=1, epoch=0) == 2
        assert [s.seq for s in await store.read("run_a")] == [1, 2]
    finally:
        await store.close()


async def test_a_server_gone_for_longer_than_the_budget_is_reported(
    postgres_url: str, proxy: Proxy
) -> None:
    store = await PostgresEventStore.open(via(proxy, postgres_url), retry_seconds=1)
    try:
        await proxy.stop()
        with pytest.raises(StoreUnavailableError) as raised:
            await store.post_signal("run_a", "cancel", {})
    finally:
        await store.close()

    message = str(raised.value)
    assert f"the Podium store at postgresql://postgres:***@127.0.0.1:{proxy.port}/" in message
    assert "could not be reached for 1 s" in message
    assert "the signal was not posted" in message
    assert "s3cret" not in message


async def test_a_search_path_naming_no_schema_says_so(postgres_database: str) -> None:
    with pytest.raises(StoreUnavailableError, match="has no schema to keep its tables in"):
        await open_store(in_schema(postgres_database, "nowhere_to_be_found"))


async def test_a_retried_write_that_had_committed_is_reported_done(postgres_url: str) -> None:
    """What `create_run`/`append` run when retrying after a lost connection: their own events,
    committed by the attempt whose acknowledgement was lost, are found rather than refused."""
    store = await PostgresEventStore.open(postgres_url)
    first = created("run_a")
    rows = [batch.event_row("run_a", 1, first)]
    create = batch.CreateRun("run_a", "wf", rows, "me-elsewhere:1:a", None, None, False)
    step = StepStarted(at=later(1), step_id="a", attempt=1)
    append = batch.AppendEvents("run_a", 1, 1, "running", (), [batch.event_row("run_a", 2, step)])
    other = batch.AppendEvents("run_a", 1, 1, None, (), [batch.event_row("run_a", 2, first)])
    try:
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
            expires = await tx.create_run(conn, create, 30.0)
            assert await tx.create_run_again(conn, create, 30.0) == expires
            assert await tx.append(conn, append) == 2
            assert await tx.append_again(conn, append) == 2
            with pytest.raises(ConcurrencyError):
                await tx.append_again(conn, other)  # not what was committed: refused as stale
            changed = replace(create, rows=[(*rows[0][:4], b"{}")])
            with pytest.raises(RunExistsError):
                await tx.create_run_again(conn, changed, 30.0)
        assert [s.seq for s in await store.read("run_a")] == [1, 2]
        assert await store.last_position() == 2
    finally:
        await store.close()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
async def test_postgres_urls_open_a_postgres_store(postgres_url: str, scheme: str) -> None:
    store = await open_store(postgres_url.replace("postgresql://", f"{scheme}://", 1))
    try:
        assert isinstance(store, PostgresEventStore)
        assert store.where.startswith(f"{scheme}://postgres@")
        await store.create_run(created("run_a"), workflow_name="wf")
    finally:
        await store.close()
    reader = await open_store(postgres_url, create=False)
    try:
        assert (await reader.get_run("run_a")).last_seq == 1
    finally:
        await reader.close()
