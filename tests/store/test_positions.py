"""The store's global positions (`read_all`), on every backend: every event of every run once,
in commit order, resumable after any position, never reused after pruning."""

from __future__ import annotations

import asyncio

from podium.core.events import RunCompleted, StepStarted
from podium.store.base import EventStore

from .conftest import Backend
from .test_contract import created, later, started


async def _everything(
    store: EventStore, after: int = 0, limit: int = 7
) -> list[tuple[int, str, int]]:
    """Page through read_all `limit` at a time: (position, run_id, seq) of each event."""
    found: list[tuple[int, str, int]] = []
    while page := await store.read_all(after=after, limit=limit):
        found += [(position, s.run_id, s.seq) for position, s in page]
        after = page[-1][0]
    return found


async def test_positions_follow_commit_order_across_runs(store: EventStore) -> None:
    await started(store, "run_a", steps=2)  # seq 1..3
    await started(store, "run_b", steps=1)  # seq 1..2
    more = [StepStarted(at=later(9), step_id="s9", attempt=1)]
    await store.append("run_a", more, expected_seq=3, epoch=0)
    found = await _everything(store, limit=2)
    assert [(r, s) for _, r, s in found] == [
        ("run_a", 1),
        ("run_a", 2),
        ("run_a", 3),
        ("run_b", 1),
        ("run_b", 2),
        ("run_a", 4),
    ]
    positions = [p for p, _, _ in found]
    assert positions == sorted(set(positions))
    tail = await store.read_all(after=positions[3])
    assert [(s.run_id, s.seq) for _, s in tail] == [("run_b", 2), ("run_a", 4)]
    assert tail[-1][1].event == more[0]
    assert await store.read_all(after=positions[-1]) == []


async def test_concurrent_appends_are_each_read_once(backend: Backend) -> None:
    store = backend.store
    run_ids = [f"run_{i:02}" for i in range(12)]
    await asyncio.gather(*(store.create_run(created(r), workflow_name="wf") for r in run_ids))

    async def drive(run_id: str) -> None:
        seq = 1
        for turn in range(10):
            events = [StepStarted(at=later(turn), step_id=f"s{turn}", attempt=1)]
            seq = await store.append(run_id, events, expected_seq=seq, epoch=0)

    await asyncio.gather(*(drive(r) for r in run_ids))
    found = await _everything(await backend.other(), limit=13)
    assert len(found) == len({(r, s) for _, r, s in found}) == 12 * 11
    for run_id in run_ids:
        assert [s for _, r, s in found if r == run_id] == list(range(1, 12))


async def test_pruning_never_lets_a_position_be_given_again(store: EventStore) -> None:
    await started(store, "run_old")
    last = await started(store, "run_new", steps=3)
    end = [RunCompleted(at=later(30), outcome="succeeded")]
    await store.append("run_new", end, expected_seq=last, epoch=0, status="succeeded")
    highest = (await _everything(store))[-1][0]
    assert await store.last_position() == highest
    assert [r.run_id for r in await store.prune()] == ["run_new"]
    assert await store.last_position() == highest  # the newest events went; their place stays
    assert {r for _, r, _ in await _everything(store)} == {"run_old"}
    await store.create_run(created("run_next"), workflow_name="wf")
    fresh = await store.read_all(after=highest)
    assert [(s.run_id, s.seq) for _, s in fresh] == [("run_next", 1)]
    assert fresh[0][0] > highest
    assert await store.last_position() == fresh[0][0]


async def test_a_new_store_has_given_no_position(store: EventStore) -> None:
    assert await store.last_position() == 0
    assert await store.read_all(after=await store.last_position()) == []
