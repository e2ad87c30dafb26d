"""Opening a SQLite store file: the busy budget, WAL, read-only schema check, migrations, errors.

Opening never takes the write lock when the schema is current (the common case: many processes
opening one file at once); only a file that lacks migrations is migrated, under BEGIN IMMEDIATE.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import quote

from podium.errors import StoreError, StoreUnavailableError, UsageError
from podium.store import _sql as sql

T = TypeVar("T")
DIALECT = "sqlite"
BUSY_ENV = "PODIUM_SQLITE_BUSY_SECONDS"
DEFAULT_BUSY_SECONDS = 30.0
PROGRESS_FACTOR = 10
"""Writes to a run that exists retry this many busy budgets: losing its progress is worse."""
SLICE_SECONDS = 0.1
"""How long one attempt waits in SQLite's own busy handler before a jittered retry."""


@dataclass(frozen=True, slots=True)
class BusyBudget:
    """How long to keep trying while other connections hold the write lock."""

    seconds: float

    @property
    def progress_seconds(self) -> float:
        return self.seconds * PROGRESS_FACTOR

    @classmethod
    def resolve(cls, seconds: float | None) -> BusyBudget:
        """`seconds` if given, else $PODIUM_SQLITE_BUSY_SECONDS, else 30 s."""
        source = "busy_seconds"
        if seconds is None:
            text = os.environ.get(BUSY_ENV, "").strip()
            source = f"{BUSY_ENV}={text!r}"
            seconds = _parse_seconds(text, source) if text else DEFAULT_BUSY_SECONDS
        if not seconds > 0:
            raise UsageError(
                f"{source} is not a positive number of seconds: the SQLite busy budget is how "
                "long to wait for other processes' writes; set it to e.g. 30"
            )
        return cls(float(seconds))


def _parse_seconds(text: str, source: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UsageError(
            f"{source} is not a number of seconds: the SQLite busy budget is how long to wait "
            "for other processes' writes; set it to e.g. 30, or unset it"
        ) from None


def is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def backoff_seconds(attempt: int) -> float:
    """Full jitter: a random pause up to 2 ms, doubling per attempt to at most 100 ms."""
    return random.uniform(0, min(0.002 * 2**attempt, 0.1))


def retry_busy(fn: Callable[[], T], deadline: float) -> T:
    """Call `fn` (on the calling thread) until it is not refused as busy or `deadline` passes."""
    attempt = 0
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(backoff_seconds(attempt))
        attempt += 1


class SchemaGuard:
    """Refuses to work on a file a newer Podium migrated while this store had it open."""

    def __init__(self, where: str, conn: sqlite3.Connection) -> None:
        self._where = where
        self._latest = sql.migrations(DIALECT)[-1].version
        self._cookie = _cookie(conn)

    def check(self, conn: sqlite3.Connection) -> None:
        cookie = _cookie(conn)
        if cookie == self._cookie:
            return
        found = _schema_version(conn)
        if found > self._latest:
            raise StoreUnavailableError(sql.newer_schema_message(self._where, found, self._latest))
        self._cookie = cookie


def _cookie(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA schema_version").fetchone()[0])


def connect(
    location: str | os.PathLike[str], budget: BusyBudget, *, create: bool = True
) -> tuple[Path, sqlite3.Connection]:
    """Open, configure and migrate; a failure becomes a StoreUnavailableError saying what to do.
    Another application's SQLite file is refused untouched. With `create=False` the file must
    be a current Podium store already: nothing is created, migrated or switched to WAL."""
    path = _checked_path(location, create=create)
    kind = _inspect(path, budget)
    if not create and kind != "podium":
        raise StoreUnavailableError(
            f"no Podium store at {path}; check the path (--db or PODIUM_DB), or start a run "
            "with `podium run` to create one there"
        )
    try:
        conn = sqlite3.connect(
            path, isolation_level=None, timeout=SLICE_SECONDS, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise unavailable(path, exc, budget) from exc
    try:
        deadline = time.monotonic() + budget.seconds
        if create:
            _configure(conn, deadline)
            migrate(conn, str(path), deadline)
        else:
            conn.execute("PRAGMA foreign_keys = ON")
            _require_current(conn, str(path), deadline)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise unavailable(path, exc, budget) from exc
        raise
    return path, conn


def _checked_path(location: str | os.PathLike[str], *, create: bool) -> Path:
    path = Path(location).expanduser()
    if path.is_dir():
        raise StoreUnavailableError(
            f"the Podium store path {path} is a directory; pass a file path such as "
            f"{path / 'podium.db'}"
        )
    if not create:
        return path
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnavailableError(
            f"cannot create the folder for the Podium store at {path}: {exc}; choose a "
            "writable location (--db or PODIUM_DB)"
        ) from exc
    _create_private(path)
    return path


def _create_private(path: Path) -> None:
    """A new store file is created empty with mode 0600 before SQLite opens it (whatever the
    umask), so the runs it will hold are readable by their owner only; SQLite gives the -wal
    and -shm files the database file's mode. An existing file is left as it is."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreUnavailableError(
            f"cannot create the Podium store file {path}: {exc}; check that its folder is "
            "writable, or choose another location (--db or PODIUM_DB)"
        ) from exc
    os.close(fd)


def _configure(conn: sqlite3.Connection, deadline: float) -> None:
    _enter_wal(conn, deadline)
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")


def _enter_wal(conn: sqlite3.Connection, deadline: float) -> None:
    """Switch to WAL unless the file is in WAL already (asking takes no lock; switching does).
    Two processes switching a new file at once can deadlock on SQLite's locks, and SQLite then
    fails one at once without honouring the busy timeout: retry with jittered backoff."""

    def switch() -> None:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")

    retry_busy(switch, deadline)


StoreKind = Literal["absent", "empty", "podium"]


def _inspect(path: Path, budget: BusyBudget) -> StoreKind:
    """What is at `path`, read through a read-only connection that changes nothing: no file, an
    empty database, or a Podium store. Another application's database is refused here."""
    if not path.exists():
        return "absent"
    try:
        conn = sqlite3.connect(
            f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=SLICE_SECONDS
        )
    except sqlite3.Error as exc:
        raise unavailable(path, exc, budget) from exc
    try:
        deadline = time.monotonic() + budget.seconds
        names = retry_busy(lambda: _table_names(conn), deadline)
    except sqlite3.Error as exc:
        raise unavailable(path, exc, budget) from exc
    finally:
        conn.close()
    if "schema_migrations" in names:
        return "podium"
    if not names:
        return "empty"
    shown = ", ".join(sorted(names)[:5]) + (", …" if len(names) > 5 else "")
    raise StoreUnavailableError(
        f"{path} is another application's SQLite database (tables: {shown}), not a Podium "
        "store; it was left untouched. Point --db or PODIUM_DB at a Podium store or a new file"
    )


def _table_names(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
    return {str(name) for (name,) in rows}


def _require_current(conn: sqlite3.Connection, where: str, deadline: float) -> None:
    """A store opened only to read must have this Podium's schema: it is never migrated."""
    latest = sql.migrations(DIALECT)[-1].version
    current = retry_busy(lambda: _schema_version(conn), deadline)
    if current > latest:
        raise StoreUnavailableError(sql.newer_schema_message(where, current, latest))
    if current < latest:
        raise StoreUnavailableError(
            f"the Podium store at {where} has an older schema ({current}; this Podium uses "
            f"{latest}) and a command that only reads does not upgrade it; run `podium resume "
            "RUN` or `podium run` on it once to upgrade it in place"
        )


def migrate(conn: sqlite3.Connection, where: str, deadline: float) -> None:
    """Apply the packaged migrations this file lacks, in order, in one transaction. The version
    is read first without a lock; the write lock is taken only if something is missing."""
    known = sql.migrations(DIALECT)
    latest = known[-1].version
    current = retry_busy(lambda: _schema_version(conn), deadline)
    if current > latest:
        raise StoreUnavailableError(sql.newer_schema_message(where, current, latest))
    if current < latest:
        retry_busy(lambda: _apply(conn, known, where), deadline)


def _schema_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    return int(conn.execute(sql.SCHEMA_VERSION).fetchone()[0]) if exists else 0


def _apply(conn: sqlite3.Connection, known: list[sql.Migration], where: str) -> None:
    latest = known[-1].version
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(sql.CREATE_MIGRATIONS_TABLE)
        current = conn.execute(sql.SCHEMA_VERSION).fetchone()[0]
        if current > latest:
            raise StoreUnavailableError(sql.newer_schema_message(where, current, latest))
        for migration in known:
            if migration.version > current:
                for statement in _statements(migration.script):
                    conn.execute(statement)
                applied_at = datetime.now(UTC).timestamp()
                conn.execute(sql.RECORD_MIGRATION, (migration.version, applied_at))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> Iterator[str]:
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""


_OPEN_HINTS = (
    ("not a database", "the file is not a Podium (SQLite) database or its header is damaged"),
    ("malformed", "the database file is damaged; restore it from a backup or move it away"),
    ("unable to open", "check that the path and its folder exist and are readable and writable"),
    ("readonly", "the file or its folder is read-only; fix the permissions"),
)


def unavailable(path: Path, exc: sqlite3.Error, budget: BusyBudget) -> StoreUnavailableError:
    if is_busy(exc):
        return busy_error(path, budget.seconds, "nothing was recorded")
    text = str(exc)
    hint = next((h for key, h in _OPEN_HINTS if key in text), "check the file and its folder")
    return StoreUnavailableError(
        f"cannot open the Podium store at {path}: {text}; {hint}, or point --db / PODIUM_DB at "
        "another file"
    )


def busy_error(path: Path, seconds: float, consequence: str) -> StoreUnavailableError:
    """The write lock stayed with other connections for the whole busy budget."""
    return StoreUnavailableError(
        f"the Podium store at {path} stayed locked by other processes for {seconds:g} s (the "
        f"busy budget); {consequence}. Try again when fewer processes write to it, or allow a "
        f"longer wait with {BUSY_ENV}=SECONDS"
    )


def failure(path: Path, exc: sqlite3.Error) -> StoreError:
    return StoreError(
        f"the Podium store at {path} failed: {exc}; check free disk space and permissions, and "
        "run `sqlite3 FILE 'PRAGMA integrity_check'` if it persists"
    )
