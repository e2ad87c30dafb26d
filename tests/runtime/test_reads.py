"""The engine's read API: committed snapshots only, bounded subscriptions that catch up from the
store, followers in another engine, listing, and an engine in control mode."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from podium.core import events as ev
from podium.errors import UsageError
from podium.runtime.bus import EventBus
from podium.runtime.engine import Engine
from podium.runtime.pruning import prune_runs
from podium.store.base import RunStatus, StoredEvent
from podium.store.memory import MemoryEventStore

from .test_engine import py, wf


def chain(n: int) -> dict[str, Any]:
    steps = [
        py(f"s{i}", "echo", *([f"s{i - 1}"] if i else []), args={"value": i}) for i in range(n)
    ]
    return wf(*steps)


class _SlowAppends(MemoryEventStore):
    """Holds each append until the test lets it through, so a turn stays uncommitted."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def append(self, run_id: str, events: Sequence[ev.Event], **kwargs: Any) -> int:
        if any(isinstance(e, ev.StepSucceeded) for e in events):
            self.holding.set()
            await self.release.wait()
        return await super().append(run_id, events, **kwargs)


async def test_a_snapshot_never_shows_events_not_yet_committed(tmp_path: Path) -> None:
    store = _SlowAppends()
    async with Engine(store, workspace=tmp_path) as engine:
        run_id = await engine.submit(wf(py("a", "echo", args={"value": 1})))
        await asyncio.wait_for(store.holding.wait(), 10)
        snapshot = await engine.state(run_id)  # the driver has folded a.succeeded; not committed
        assert snapshot.seq == (await store.get_run(run_id)).last_seq
        assert snapshot.steps["a"].output is None
        store.release.set()
        assert (await engine.wait(run_id)).steps["a"].output == 1


async def test_a_slow_subscriber_of_every_run_catches_up_from_the_store(tmp_path: Path) -> None:
    async with await Engine.open(tmp_path / "p.db", workspace=tmp_path) as engine:
        engine.bus = EventBus(limit=3)  # far fewer than the runs will commit
        feed = engine.subscribe()
        first = asyncio.ensure_future(feed.__anext__())
        await asyncio.sleep(0)  # the subscription exists before the runs start
        ids = [await engine.submit(chain(5)) for _ in range(3)]
        for run_id in ids:
            await engine.wait(run_id)
        seen: dict[str, list[int]] = {run_id: [] for run_id in ids}
        stored: StoredEvent = await first
        seen[stored.run_id].append(stored.seq)
        expected = {run_id: (await engine.store.get_run(run_id)).last_seq for run_id in ids}
        while any(len(seqs) < expected[r] - 1 for r, seqs in seen.items()):
            stored = await asyncio.wait_for(feed.__anext__(), 10)
            seen[stored.run_id].append(stored.seq)
        await feed.aclose()  # type: ignore[attr-defined]
    for run_id, seqs in seen.items():
        assert seqs == list(range(2, expected[run_id] + 1)), run_id  # all after run.created


async def test_a_follower_in_another_engine_sees_every_event(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    async with (
        await Engine.open(db, workspace=tmp_path) as driver,
        await Engine.open(db, mode="control") as reader,
    ):
        run_id = await driver.submit(chain(6))
        followed = [s.seq async for s in reader.events(run_id, follow=True)]
        await driver.wait(run_id)
        last = (await driver.store.get_run(run_id)).last_seq
    assert followed == list(range(1, last + 1))


async def test_runs_are_listed_by_page_and_filter(tmp_path: Path) -> None:
    async with await Engine.open(tmp_path / "p.db", workspace=tmp_path) as engine:
        ids = [await engine.run(chain(1)) for _ in range(5)]
        statuses: list[RunStatus] = ["succeeded"]
        page1 = await engine.list_runs(statuses=statuses, limit=2)
        page2 = await engine.list_runs(statuses=statuses, limit=2, after=page1[-1].run_id)
        rest = await engine.list_runs(limit=10, after=page2[-1].run_id)
        listed = [r.run_id for r in page1 + page2 + rest]
        assert listed == [s.run_id for s in reversed(ids)]
        assert await engine.list_runs(workflow_name="other") == []
        with pytest.raises(UsageError, match="at least 1"):
            await engine.list_runs(limit=0)


async def test_a_control_engine_never_drives(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    async with await Engine.open(db, mode="control", workspace=tmp_path) as control:
        run_id = await control.submit(chain(1))
        with pytest.raises(UsageError, match="control mode"):
            await control.resume(run_id)
        assert await control.cancel(run_id, "not needed") is False
        assert not control.is_driving(run_id)
        assert [s.kind for s in await control.store.pending_signals(run_id)] == ["cancel"]
        assert (await control.store.get_run(run_id)).status == "pending"


async def test_an_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not one of local, worker, control"):
        await Engine.open(tmp_path / "p.db", mode="server")


async def test_live_deltas_stream_while_the_run_is_driven(tmp_path: Path) -> None:
    async with await Engine.open(tmp_path / "p.db", workspace=tmp_path) as engine:
        run_id = await engine.submit(wf(py("m", "metered")), start=False)
        await engine.resume(run_id)
        texts = [fragment async for fragment in engine.deltas(run_id)]  # ends with the driver
        assert texts == [("m", "partial ")]
        assert (await engine.wait(run_id)).status == "succeeded"
        assert [f async for f in engine.deltas(run_id)] == []  # nobody drives it: nothing


async def test_the_read_cache_catches_up_with_what_another_engine_commits(tmp_path: Path) -> None:
    """Engine.latest keeps a state and folds only the events committed since: it ends equal to
    a replay of the log, read concurrently or not."""
    db = tmp_path / "p.db"
    async with (
        await Engine.open(db, workspace=tmp_path) as worker,
        await Engine.open(db, mode="control", workspace=tmp_path) as reader,
    ):
        run_id = await worker.submit(chain(30))
        seen: list[int] = []
        while (record := await reader.store.get_run(run_id)).status != "succeeded":
            states = await asyncio.gather(*(reader.latest(record) for _ in range(4)))
            assert len({id(s) for s in states}) == 1  # one shared state, folded once
            seen.append(states[0].seq)
            assert states[0].seq >= record.last_seq
            await asyncio.sleep(0.005)
        await worker.wait(run_id)
        cached = await reader.latest(record)
        fresh = await reader.state(run_id)
        assert cached is not fresh
        assert cached.seq == fresh.seq == record.last_seq
        assert {s: v.status for s, v in cached.steps.items()} == {
            s: v.status for s, v in fresh.steps.items()
        }
        assert [v.output for v in cached.steps.values()] == list(range(30))
        assert len(set(seen)) > 1  # it was read while the run moved on


async def test_a_run_pruned_and_created_again_under_its_id_is_read_afresh(tmp_path: Path) -> None:
    async with await Engine.open(tmp_path / "p.db", workspace=tmp_path) as engine:
        await engine.run(chain(3), run_id="same")
        first = await engine.latest(await engine.store.get_run("same"))
        assert len(first.steps) == 3
        await prune_runs(
            engine.store,
            cutoff=datetime.now(UTC) + timedelta(days=1),
            statuses=["succeeded"],
            dry_run=False,
        )
        await engine.run(chain(5), run_id="same")
        again = await engine.latest(await engine.store.get_run("same"))
        assert len(again.steps) == 5
        assert again is not first
