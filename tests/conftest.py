"""Fixtures shared by test packages: the Postgres server that the store's contract suite and the
scale-out chaos tests use.

`postgres_server` is $PODIUM_TEST_POSTGRES_URL when set (a server's maintenance database; it is
never started or stopped here), else postgresql://postgres@127.0.0.1:5432/postgres when a server
answers there. Otherwise (or with PODIUM_TEST_POSTGRES_URL=private) the session starts a private
cluster of its own (tests/pg_cluster.py: initdb and pg_ctl from /usr/lib/postgresql/*/bin on a
free port) and removes it at the end. Without Postgres binaries either, the tests that need it
are skipped, saying why; with PODIUM_REQUIRE_POSTGRES=1 (CI) they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from tests.pg_cluster import (
    DEFAULT_POSTGRES,
    POSTGRES_ENV,
    Cluster,
    binaries,
    server_to_use,
    skip_or_fail,
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
