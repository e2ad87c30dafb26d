"""Choosing a store by URL or path."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium.errors import UsageError
from podium.store import default_store_path, open_store
from podium.store.memory import MemoryEventStore
from podium.store.sqlite import SQLiteEventStore


@pytest.mark.parametrize("url", ["memory:", "memory://"])
async def test_memory_urls_open_a_fresh_memory_store(url: str) -> None:
    store = await open_store(url)
    assert isinstance(store, MemoryEventStore)


async def test_sqlite_urls_and_plain_paths_open_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cases: list[tuple[str | Path, Path]] = [
        (f"sqlite://{tmp_path}/abs.db", tmp_path / "abs.db"),
        ("sqlite://rel/podium.db", Path("rel/podium.db")),
        (str(tmp_path / "plain.db"), tmp_path / "plain.db"),
        (tmp_path / "pathlike.db", tmp_path / "pathlike.db"),
    ]
    for url, expected in cases:
        store = await open_store(url)
        assert isinstance(store, SQLiteEventStore)
        assert store.path == expected
        await store.close()
        assert expected.is_file()


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("mysql://db/podium", "unsupported store URL 'mysql://db/podium'; use memory:"),
        ("sqlite:", "unsupported"),
    ],
)
async def test_unsupported_urls_are_usage_errors(url: str, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        await open_store(url)


def test_default_store_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PODIUM_DB", raising=False)
    assert default_store_path() == Path(".podium/podium.db")
    monkeypatch.setenv("PODIUM_DB", "/srv/podium/runs.db")
    assert default_store_path() == Path("/srv/podium/runs.db")
