"""Event stores chosen by URL: `open_store("memory:")`, `open_store("sqlite:///abs/podium.db")`,
`open_store("postgresql://user@host/podium")`."""

from __future__ import annotations

import os
import re
from pathlib import Path

from podium.errors import UsageError
from podium.store.base import EventStore

__all__ = ["EventStore", "default_store_path", "open_store"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
_SUPPORTED = "memory:, sqlite://PATH, postgresql://USER@HOST/DATABASE, or a plain file path"


def default_store_path() -> Path:
    """`$PODIUM_DB` if set, else `.podium/podium.db` under the current directory."""
    return Path(os.environ.get("PODIUM_DB") or Path(".podium") / "podium.db")


async def open_store(url: str | os.PathLike[str], *, create: bool = True) -> EventStore:
    """Open the event store that `url` names. With `create=False` (what commands that only read
    use) the store must exist already: nothing is created, migrated or changed.

    - `memory:` or `memory://` — a fresh in-process store (nothing survives the process).
    - `sqlite://PATH` — everything after `sqlite://` is the file path, as written: so
      `sqlite:///abs/podium.db` is absolute and `sqlite://runs/podium.db` is relative to the
      current directory; `~` is expanded.
    - a plain path (`str` without a scheme, or any `os.PathLike`) — a SQLite file there.
    - `postgres://…`, `postgresql://…` — a Postgres database (libpq's URL form: user, password,
      host, port, database, and query options such as `?options=-csearch_path%3Dpodium` for the
      schema to keep the tables in). Needs the `[postgres]` extra (psycopg).

    Anything else raises UsageError listing what is supported. Another application's SQLite
    file is refused (StoreUnavailableError), untouched.
    """
    if isinstance(url, os.PathLike):
        return await _open_sqlite(os.fspath(url), create)
    match = _SCHEME.match(url)
    if match is None:
        return await _open_sqlite(url, create)
    scheme, rest = match[1].lower(), url[match.end() :]
    if scheme == "memory" and rest in ("", "//"):
        from podium.store.memory import MemoryEventStore

        return MemoryEventStore()
    if scheme == "sqlite" and rest.startswith("//") and len(rest) > 2:
        return await _open_sqlite(rest[2:], create)
    if scheme in ("postgres", "postgresql"):
        return await _open_postgres(url, create)
    raise UsageError(f"unsupported store URL {url!r}; use {_SUPPORTED}")


async def _open_sqlite(path: str, create: bool) -> EventStore:
    from podium.store.sqlite import SQLiteEventStore

    return await SQLiteEventStore.open(path, create=create)


async def _open_postgres(url: str, create: bool) -> EventStore:
    try:
        from podium.store.postgres import PostgresEventStore
    except ImportError as exc:
        raise UsageError(
            f"a Postgres store needs psycopg, which is not installed ({exc}); install it with "
            "`pip install 'podium[postgres]'`, or use sqlite:///path/to/podium.db"
        ) from exc
    return await PostgresEventStore.open(url, create=create)
