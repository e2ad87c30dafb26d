"""What the benchmarks need of a Postgres server: a database of their own, fresh schemas in it,
the size of what a store holds, and the server's own commit time.

The server is `--pg-url` (default $PODIUM_BENCH_POSTGRES_URL, else the local maintenance database
postgresql://postgres@127.0.0.1:5432/postgres). A benchmark creates a database `bench_<pid>_<hex>`
there, one schema per store in it, and drops the database when it is done; nothing else on the
server is touched.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

URL_ENV = "PODIUM_BENCH_POSTGRES_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TABLES = ("runs", "events", "signals", "position_counter")  # the store's own tables


def server_url(given: str | None = None) -> str:
    return given or os.environ.get(URL_ENV) or DEFAULT_URL


def with_database(url: str, database: str) -> str:
    """`url` (libpq URL form, no query string) naming `database` instead."""
    return url.split("?", 1)[0].rsplit("/", 1)[0] + "/" + database


def in_schema(database_url: str, schema: str) -> str:
    """The URL of a store whose tables live in `schema` (libpq's `options`, URL-encoded)."""
    return f"{database_url}?options=-csearch_path%3D{schema}"


@contextmanager
def bench_database(server: str) -> Iterator[str]:
    """A new database on `server` for this benchmark (its URL), dropped afterwards."""
    name = f"bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True, connect_timeout=10) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield with_database(server, name)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def new_schema(database_url: str, prefix: str = "s") -> str:
    """A fresh, empty schema in the database: the URL of a store kept in it."""
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return in_schema(database_url, schema)


def schema_of(store_url: str) -> str:
    return store_url.rsplit("%3D", 1)[1]


def drop_schema(store_url: str) -> None:
    database_url = store_url.split("?", 1)[0]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema_of(store_url)}" CASCADE')


def store_bytes(store_url: str) -> int:
    """`pg_total_relation_size` (heap, indexes, TOAST, free-space and visibility maps) of the
    store's tables: what the database holds for it, dead row versions included."""
    database_url = store_url.split("?", 1)[0]
    schema = schema_of(store_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        total = 0
        for table in TABLES:
            row = conn.execute(
                "SELECT pg_total_relation_size(format('%%I.%%I', %s::text, %s::text)::regclass)",
                (schema, table),
            ).fetchone()
            total += int(row[0]) if row is not None else 0
        return total


def commit_seconds(database_url: str, commits: int = 30) -> float:
    """Median time of a single-row INSERT committed on its own (autocommit) in a table of the
    benchmark's database, as a client on this host sees it: the floor under any step that must
    be durable before the next one starts."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS commit_probe (seq BIGSERIAL PRIMARY KEY, b BYTEA)")
        times = []
        payload = b"x" * 300
        for _ in range(commits):
            start = time.perf_counter()
            conn.execute("INSERT INTO commit_probe (b) VALUES (%s)", (payload,))
            times.append(time.perf_counter() - start)
        conn.execute("DROP TABLE commit_probe")
    return statistics.median(times)
