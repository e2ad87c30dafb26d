"""The SQLite store is private to its owner: a new store file, its -wal and -shm files are mode
0600 and a folder Podium creates for it 0700, whatever the umask; an existing file keeps its
mode."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from podium.runtime.engine import Engine


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0o000)  # the most permissive umask: modes come from Podium alone
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _write_a_run(db: Path, workspace: Path) -> None:
    doc = {
        "name": "t",
        "steps": [{"id": "a", "kind": "python", "call": "tests.runtime.callables:echo"}],
    }
    async with await Engine.open(db, workspace=workspace) as engine:
        state = await engine.run(doc)
        assert state.status == "succeeded"
        wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
        assert (mode(db), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)


async def test_a_new_store_and_its_wal_and_shm_are_owner_only(
    tmp_path: Path, open_umask: None
) -> None:
    db = tmp_path / ".podium" / "podium.db"
    await _write_a_run(db, tmp_path)
    assert mode(db.parent) == 0o700
    assert mode(db) == 0o600


async def test_an_existing_store_keeps_its_mode(tmp_path: Path, open_umask: None) -> None:
    db = tmp_path / "podium.db"
    await _write_a_run(db, tmp_path)
    db.chmod(0o640)
    async with await Engine.open(db, workspace=tmp_path):
        pass
    assert mode(db) == 0o640


async def test_an_existing_folder_keeps_its_mode(tmp_path: Path, open_umask: None) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    await _write_a_run(folder / "podium.db", tmp_path)
    assert mode(folder) == 0o755
