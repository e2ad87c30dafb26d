"""Opening a Postgres store: connecting, the schema check and migrations, and the errors that
say what to fix. Also the dialect (`?` → `%s`) and which failures are worth retrying.

Migrations run under a transaction-scoped advisory lock, so many processes opening a new
database at once migrate it once; a database whose schema is current is only read.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime

import psycopg
from psycopg.rows import TupleRow

from podium.errors import StoreError, StoreUnavailableError
from podium.store import _sql as sql

Conn = psycopg.AsyncConnection[TupleRow]
DIALECT = "postgres"
CONNECT_TIMEOUT_SECONDS = 10
MIGRATION_LOCK = 0x506F_6469_756D  # "Podium": the advisory lock key migrations hold
PODIUM_TABLES = ("runs", "events", "signals", "position_counter")

# As `_sql`'s, with applied_at as double precision (Postgres's REAL is single precision).
_CREATE_MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
    " applied_at DOUBLE PRECISION)"
)
_PASSWORD_IN_URL = re.compile(r"(://[^:/@?#]*):[^@/?#]*@")
_PASSWORD_PARAM = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)


def q(query: str) -> str:
    """A shared `_sql` query (sqlite3's `?` placeholders) in psycopg's paramstyle. None of
    those queries has a literal `?` or `%`."""
    return query.replace("?", "%s")


def redacted(url: str) -> str:
    """`url` with any password replaced by `***`, for messages and logs."""
    return _PASSWORD_PARAM.sub(r"\1***", _PASSWORD_IN_URL.sub(r"\1:***@", url))


def unreachable(where: str, exc: BaseException) -> StoreUnavailableError:
    """The server could not be reached or refused us, or the URL itself is malformed."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return StoreUnavailableError(
        f"cannot connect to the Podium store at {where}: {detail}; check that the Postgres "
        "server is running and that the host, port, user, password and database in the URL "
        "(postgresql://USER:PASSWORD@HOST:PORT/DATABASE) are right"
    )


def failed(where: str, exc: BaseException, consequence: str) -> StoreError:
    """A query failed in a way retrying does not cure."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return StoreError(f"the Podium store at {where} failed: {detail}; {consequence}")


def is_transient(exc: BaseException, conn: Conn | None) -> bool:
    """A lost connection (server restart, failover), an admin shutdown or a serialization
    failure or deadlock: nothing of the transaction was kept, so trying again is safe."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = getattr(exc, "sqlstate", None) or ""
    if conn is not None and conn.broken:
        return True
    return state.startswith(("08", "57P")) or state in ("40001", "40P01") or not state


def backoff_seconds(attempt: int) -> float:
    """Full jitter: a random pause up to 50 ms, doubling per attempt to at most 1 s."""
    return random.uniform(0, min(0.05 * 2**attempt, 1.0))


async def connect(url: str, where: str) -> Conn:
    try:
        return await psycopg.AsyncConnection.connect(
            url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
        )
    except psycopg.Error as exc:
        raise unreachable(where, exc) from exc


async def prepare(conn: Conn, where: str, create: bool) -> str:
    """Migrate (or, without `create`, require a current schema); return the schema's name."""
    try:
        row = await (await conn.execute("SELECT current_schema()")).fetchone()
        if row is None or row[0] is None:
            raise StoreUnavailableError(
                f"the Podium store at {where} has no schema to keep its tables in (no schema "
                "the search_path names exists); create it, or fix the search_path option in "
                "the URL (?options=-csearch_path%3DNAME)"
            )
        if create:
            await migrate(conn, where)
        else:
            await require_current(conn, where)
    except psycopg.Error as exc:
        hint = "check that the user may create tables there" if create else "check the URL"
        raise failed(where, exc, hint) from exc
    return str(row[0])


async def schema_version(conn: Conn) -> int | None:
    """The applied version; 0 for an empty database, None for another application's tables."""
    rows = await (await conn.execute(_TABLES, (["schema_migrations", *PODIUM_TABLES],))).fetchall()
    names = {str(name) for (name,) in rows}
    if "schema_migrations" in names:
        found = await (await conn.execute(sql.SCHEMA_VERSION)).fetchone()
        return int(found[0]) if found is not None else 0
    return None if names else 0


# Which of these tables the schema has, in one statement: one snapshot, in which another
# process's migration has committed whole or not at all (two lookups could see its tables but
# not yet its schema_migrations). Read from pg_class with the statement's snapshot, not with
# to_regclass: that goes through the backend's catalog cache, which an advisory lock does not
# refresh, so a process that waited for another's migration would find no tables and migrate
# again.
_TABLES = (
    "SELECT c.relname FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relname = ANY(%s) AND n.nspname = current_schema()"
)


async def require_current(conn: Conn, where: str) -> None:
    """A store opened only to read must have this Podium's schema: it is never migrated."""
    latest = sql.migrations(DIALECT)[-1].version
    current = _known(await schema_version(conn), where)
    if current > latest:
        raise StoreUnavailableError(sql.newer_schema_message(where, current, latest))
    if current == 0:
        raise StoreUnavailableError(
            f"no Podium store at {where}; check the URL, or start a run with `podium run` "
            "to create one there"
        )
    if current < latest:
        raise StoreUnavailableError(
            f"the Podium store at {where} has an older schema ({current}; this Podium uses "
            f"{latest}) and a command that only reads does not upgrade it; run `podium resume "
            "RUN` or `podium run` on it once to upgrade it in place"
        )


async def migrate(conn: Conn, where: str) -> None:
    """Apply the packaged migrations the database lacks, in order, in one transaction. The
    version is read first without a lock; the advisory lock is taken only to change it."""
    known = sql.migrations(DIALECT)
    latest = known[-1].version
    current = _known(await schema_version(conn), where)
    if current > latest:
        raise StoreUnavailableError(sql.newer_schema_message(where, current, latest))
    if current == latest:
        return
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        current = _known(await schema_version(conn), where)  # another process may have won
        if current > latest:
            raise StoreUnavailableError(sql.newer_schema_message(where, current, latest))
        await conn.execute(_CREATE_MIGRATIONS_TABLE)
        for migration in known:
            if migration.version > current:
                await conn.execute(migration.script.encode())
                applied_at = datetime.now(UTC).timestamp()
                await conn.execute(q(sql.RECORD_MIGRATION), (migration.version, applied_at))


def _known(version: int | None, where: str) -> int:
    if version is None:
        tables = ", ".join(PODIUM_TABLES)
        raise StoreUnavailableError(
            f"the database at {where} has tables named like Podium's ({tables}) but is not a "
            "Podium store; it was left untouched. Point the URL at another database, or at "
            "another schema with ?options=-csearch_path%3DNAME"
        )
    return version
