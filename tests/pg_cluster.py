"""A private PostgreSQL cluster for tests: `initdb` into a temporary folder, `pg_ctl` on a free
port of 127.0.0.1 (its socket in the same folder, trust auth, fsync off), removed at the end.

The test session starts one when the machine has no server to test against (`postgres_server`
in tests/conftest.py), and the chaos test that restarts its server starts one of its own, so the
machine's shared cluster is never restarted. As root (CI) the cluster runs as the `postgres` user
that Debian's package creates: Postgres refuses to run as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

POSTGRES_ENV = "PODIUM_TEST_POSTGRES_URL"
"""A server's URL (its maintenance database); `private` starts a private cluster at once."""
PRIVATE = "private"
REQUIRE_POSTGRES_ENV = "PODIUM_REQUIRE_POSTGRES"  # 1: no server is a failure, not a skip
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DEBIAN_BINARIES = "/usr/lib/postgresql/*/bin"
START_TIMEOUT_SECONDS = 60
PROBE_TIMEOUT_SECONDS = 3


def binaries() -> Path | None:
    """The folder holding `initdb` and `pg_ctl`: Debian's newest, else the ones on PATH."""

    def version(folder: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", folder))

    folders = sorted(glob.glob(DEBIAN_BINARIES), key=version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path is not None:
        folders.append(str(Path(on_path).parent))
    for folder in folders:
        if all((Path(folder) / name).is_file() for name in ("initdb", "pg_ctl")):
            return Path(folder)
    return None


def answers(url: str) -> bool:
    """Whether a Postgres server accepts a connection at `url` within a few seconds."""
    try:
        psycopg.connect(url, connect_timeout=PROBE_TIMEOUT_SECONDS).close()
    except psycopg.Error:
        return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Cluster:
    """One private cluster: `Cluster.create()`, then `start`, `stop`, `restart`, `remove`."""

    def __init__(self, bin_dir: Path, root: Path, port: int) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.port = port
        self.data = root / "data"
        self.log = root / "postgres.log"
        self._as = _run_as()
        self._started = False

    @classmethod
    def create(cls, bin_dir: Path | None = None) -> Cluster:
        """A new, stopped cluster in a fresh folder under the temporary directory (short, so
        the socket's path fits; world-traversable, unlike pytest's, for the `postgres` user)."""
        found = bin_dir or binaries()
        if found is None:
            raise RuntimeError(f"no initdb/pg_ctl in {DEBIAN_BINARIES} or on PATH")
        root = Path(tempfile.mkdtemp(prefix="podium-pg-"))
        cluster = cls(found, root, free_port())
        try:
            if "user" in cluster._as:
                os.chown(root, cluster._as["user"], cluster._as["group"])
            data = str(cluster.data)
            cluster._call(
                "initdb",
                "--no-sync",
                "-D",
                data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",  # the root-less environment has no LANG: not SQL_ASCII
            )
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cluster

    @property
    def url(self) -> str:
        """The maintenance database's URL (TCP on 127.0.0.1, user postgres, no password)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the server; a port taken meanwhile by another process is traded for a new one
        (the first start only: a restart keeps its port, which the URLs name)."""
        for attempt in range(3):
            options = (
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
                " -c max_connections=300 -c shared_buffers=32MB"
            )
            wait = ["-w", "-t", str(START_TIMEOUT_SECONDS)]
            last = attempt == 2 or self._started
            started = self._ctl("start", *wait, "-l", str(self.log), "-o", options, check=last)
            if started.returncode == 0:
                self._started = True
                return
            if "already in use" not in self.log_tail():
                raise RuntimeError(f"pg_ctl start failed: {started.stderr}\n{self.log_tail()}")
            self.port = free_port()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: sessions are disconnected; `immediate`: as if it crashed)."""
        self._ctl("stop", "-w", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def running(self) -> bool:
        return self._ctl("status", check=False).returncode == 0

    def remove(self) -> None:
        """Stop the server if it runs, and delete the folder."""
        with contextlib.suppress(subprocess.CalledProcessError):
            if self.running():
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._call("pg_ctl", "-D", str(self.data), *args, check=check)

    def _call(
        self, program: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.bin_dir / program), *args],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_SECONDS + 30,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            **self._as,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(args)} failed (exit {done.returncode}): "
                f"{done.stdout}{done.stderr}\n{self.log_tail()}"
            )
        return done


def _run_as() -> dict[str, Any]:
    """subprocess options that drop root to the `postgres` user (Postgres refuses root)."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(
            "running as root but there is no `postgres` user to run a cluster as; "
            "apt-get install postgresql creates one"
        ) from None
    home = {"HOME": str(Path(tempfile.gettempdir())), "PATH": os.environ.get("PATH", "")}
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [], "env": home}


def server_to_use(configured: str | None, default: str = DEFAULT_POSTGRES) -> str | None:
    """The server the session tests against: `configured` ($PODIUM_TEST_POSTGRES_URL) when set,
    else `default` if it answers; None when a private cluster must be started (`private`, or
    nothing set and nothing answering at `default`)."""
    if configured == PRIVATE:
        return None
    if configured:
        return configured
    return default if answers(default) else None


@contextlib.contextmanager
def private_cluster(why: str) -> Iterator[Cluster]:
    """A started private cluster, removed afterwards; without binaries (or a user to run them
    as) the test is skipped, or failed under PODIUM_REQUIRE_POSTGRES=1, saying `why` it needed
    one."""
    found = binaries()
    if found is None:
        skip_or_fail(
            f"{why}, and no Postgres binaries (initdb, pg_ctl) are installed to start one: "
            "apt-get install postgresql"
        )
    try:
        cluster = Cluster.create(found)
    except RuntimeError as exc:
        skip_or_fail(f"{why}, and none could be started: {exc}")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


def skip_or_fail(reason: str) -> None:
    """Skip, or fail when PODIUM_REQUIRE_POSTGRES=1 (a machine that should have Postgres)."""
    if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def with_database(url: str, database: str) -> str:
    """`url` (libpq URL form, no query string) naming `database` instead."""
    return url.rsplit("/", 1)[0] + "/" + database


def in_schema(url: str, schema: str) -> str:
    """`url` with its tables kept in `schema` (libpq's `options`, URL-encoded)."""
    return f"{url}?options=-csearch_path%3D{schema}"


async def new_schema(database_url: str) -> str:
    """A fresh, empty schema in the session's database: the URL of a store kept in it."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    async with conn:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    return in_schema(database_url, schema)
