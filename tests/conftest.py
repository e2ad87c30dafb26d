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
    PRIVATE,
    new_schema,
    private_cluster,
    server_to_use,
    skip_or_fail,
    with_database,
)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A Postgres server's maintenance database, for tests to create databases on: its URL."""
    configured = os.environ.get(POSTGRES_ENV)
    chosen = server_to_use(configured)
    if chosen is not None:
        yield chosen
        return
    why = f"no Postgres server answers at {DEFAULT_POSTGRES} (nor is {POSTGRES_ENV} set)"
    if configured == PRIVATE:
        why = f"{POSTGRES_ENV}={PRIVATE} asks for a private cluster"
    with private_cluster(why) as cluster:
        yield cluster.url


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
