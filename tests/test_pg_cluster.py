"""The test helper that gives a session a Postgres when the machine has none (tests/pg_cluster.py):
which server it picks, and a private cluster's life (start, restart, remove)."""

from __future__ import annotations

import socket

import psycopg
import pytest
from tests.pg_cluster import PRIVATE, Cluster, binaries, free_port, server_to_use

needs_binaries = pytest.mark.skipif(binaries() is None, reason="no initdb/pg_ctl installed")


def test_a_configured_server_is_used_as_it_is() -> None:
    given = "postgresql://someone@db.example:6543/postgres"
    assert server_to_use(given, default=given.replace("6543", "1")) == given


def test_nothing_answering_at_the_default_asks_for_a_private_cluster() -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    assert server_to_use(None, default=dead) is None
    assert server_to_use("", default=dead) is None
    assert server_to_use(PRIVATE, default=dead) is None


@needs_binaries
def test_a_private_cluster_starts_restarts_and_is_removed() -> None:
    cluster = Cluster.create()
    try:
        assert server_to_use(None, default=cluster.url) is None  # not started yet
        cluster.start()
        assert server_to_use(None, default=cluster.url) == cluster.url
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (n INTEGER)")
            conn.execute("INSERT INTO kept VALUES (7)")
            encoding = conn.execute("SHOW server_encoding").fetchone()
        assert encoding == ("UTF8",)
        cluster.restart()
        with psycopg.connect(cluster.url) as conn:
            assert conn.execute("SELECT n FROM kept").fetchall() == [(7,)]
    finally:
        cluster.remove()
    assert not cluster.root.exists()
    assert server_to_use(None, default=cluster.url) is None


@needs_binaries
def test_a_port_taken_before_the_first_start_is_traded_for_a_free_one() -> None:
    cluster = Cluster.create()
    try:
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", cluster.port))
            squatter.listen()
            taken = cluster.port
            cluster.start()
        assert cluster.port != taken
        assert server_to_use(None, default=cluster.url) == cluster.url
    finally:
        cluster.remove()
