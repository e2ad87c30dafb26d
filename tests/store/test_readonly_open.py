"""Opening a store only to read never creates, migrates or changes a file, and another
application's SQLite file is refused untouched, whether Podium would read or write it."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from podium.errors import StoreUnavailableError
from podium.store import open_store

from .conftest import created
from .test_sqlite_schema import build_v1


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _journal_mode(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


def _foreign(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users VALUES (1, 'ada')")
    conn.commit()
    conn.close()
    return path


async def test_a_missing_file_is_not_created_when_only_reading(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "typo.db"
    with pytest.raises(StoreUnavailableError, match=r"no Podium store at .*typo\.db; check"):
        await open_store(path, create=False)
    assert not path.exists()
    assert not path.parent.exists()


@pytest.mark.parametrize("create", [False, True])
async def test_another_applications_database_is_refused_untouched(
    tmp_path: Path, create: bool
) -> None:
    path = _foreign(tmp_path / "app.db")
    before, mode = _digest(path), _journal_mode(path)
    with pytest.raises(StoreUnavailableError, match=r"another application's SQLite database"):
        await open_store(path, create=create)
    assert _digest(path) == before
    assert _journal_mode(path) == mode == "delete"
    assert _names(tmp_path) == ["app.db"]


async def test_an_empty_file_is_not_a_store_to_read(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with pytest.raises(StoreUnavailableError, match="no Podium store"):
        await open_store(path, create=False)
    assert path.read_bytes() == b""


async def test_a_podium_store_opens_to_read(tmp_path: Path) -> None:
    path = tmp_path / "podium.db"
    store = await open_store(path)
    await store.create_run(created("run_a"), workflow_name="wf")
    await store.close()
    reader = await open_store(path, create=False)
    try:
        assert [r.run_id for r in await reader.list_runs()] == ["run_a"]
    finally:
        await reader.close()


async def test_an_older_store_is_not_migrated_by_a_reader(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    build_v1(path)
    before = _digest(path)
    with pytest.raises(StoreUnavailableError, match=r"older schema \(1; .* does not upgrade it"):
        await open_store(path, create=False)
    assert _digest(path) == before


async def test_a_newer_store_is_refused_by_a_reader(tmp_path: Path) -> None:
    path = tmp_path / "podium.db"
    await (await open_store(path)).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("INSERT INTO schema_migrations VALUES (99, 0)")
    conn.close()
    with pytest.raises(StoreUnavailableError, match=r"newer Podium \(schema 99.*upgrade podium"):
        await open_store(path, create=False)
