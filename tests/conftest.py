"""Fixtures shared by test packages: the Postgres server that the store's contract suite and the
scale-out chaos tests use.

`postgres_server` is $PODIUM_TEST_POSTGRES_URL when set (a server's maintenance database; it is
never started or stopped here), else postgresql://postgres@127.0.0.1:5432/postgres when a server
answers there. Otherwise (or with PODIUM_TEST_POSTGRES_URL=private) the session starts a private
cluster of its own (tests/pg_cluster.py: initdb and pg_ctl from /usr/lib/postgresql/*/bin on a
free port) and removes it at the end. Without Postgres binaries either, the tests that need it
are skipped, saying why; with PODIUM_REQUIRE_POSTGRES=1 (CI) they fail instead.

`postgres_database` is a database of the session's own on that server (dropped at the end), and
`postgres_url` a fresh schema in it for one test: the URL of an empty store.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from tests.pg_cluster import (
    DEFAULT_POSTGRES,
    POSTGRES_ENV,
    Cluster,
    binaries,
    new_schema,
    server_to_use,
    skip_or_fail,
    with_database,
)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A Postgres server's maintenance database, for tests to create databases on: its URL."""
    chosen = server_to_use(os.environ.get(POSTGRES_ENV))
    if chosen is not None:
        yield chosen
        return
    found = binaries()
    if found is None:
        skip_or_fail(
            f"no Postgres server answers at {DEFAULT_POSTGRES} and no Postgres binaries "
            f"(initdb, pg_ctl) are installed to start one: apt-get install postgresql, or set "
            f"{POSTGRES_ENV} to a server's URL"
        )
    cluster = Cluster.create(found)
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.remove()


@pytest.fixture(scope="session")
def postgres_database(postgres_server: str) -> Iterator[str]:
    """A database of this session's own on the test server, dropped at the end: its URL."""
    name = f"podium_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(postgres_server, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        skip_or_fail(
            f"no Postgres server at {postgres_server} ({exc}); set {POSTGRES_ENV} to test it"
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield with_database(postgres_server, name)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def postgres_url(postgres_database: str) -> str:
    """A store URL of this test's own: a fresh, empty schema in the session's database."""
    return await new_schema(postgres_database)
