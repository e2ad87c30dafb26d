"""What only the Postgres store has to get right when many processes (here, store objects with
pools of their own) race on one database: claims, appends, positions, prunes, threads."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from podium.core.events import RunCompleted, StepStarted
from podium.errors import (
    ConcurrencyError,
    RunNotFoundError,
    ThreadBusyError,
)
from podium.store.postgres import PostgresEventStore

from .conftest import created, later
from .test_many_processes import CHILD as CHILD_SQLITE

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def stores(postgres_url: str) -> AsyncIterator[list[PostgresEventStore]]:
    opened = [await PostgresEventStore.open(postgres_url) for _ in range(3)]
    try:
        yield opened
    finally:
        for store in opened:
            await store.close()


async def test_stores_claiming_at_once_never_share_a_run(stores: list[PostgresEventStore]) -> None:
    run_ids = [f"run_{i:03}" for i in range(60)]
    for run_id in run_ids:
        await stores[0].create_run(created(run_id), workflow_name="wf")

    async def claim_all(store: PostgresEventStore, owner: str) -> list[str]:
        mine: list[str] = []
        while claims := await store.claim(owner, limit=3, ttl_seconds=60):
            mine += [c.lease.run_id for c in claims]
        return mine

    owners = [f"w{i}-elsewhere:1:x" for i in range(6)]
    results = await asyncio.gather(
        *(claim_all(stores[i % len(stores)], owner) for i, owner in enumerate(owners))
    )

    assert sorted(run_id for mine in results for run_id in mine) == run_ids
    for owner, mine in zip(owners, results, strict=True):
        for run_id in mine:
            record = await stores[0].get_run(run_id)
            assert (record.owner, record.epoch) == (owner, 1)


async def test_an_append_under_a_stale_epoch_is_refused(stores: list[PostgresEventStore]) -> None:
    old, new = stores[0], stores[1]
    await old.create_run(
        created("run_a"), workflow_name="wf", lease_owner="old-elsewhere:1:a", ttl_seconds=0.2
    )
    await asyncio.sleep(0.3)  # the old driver's lease expires on the database's clock
    lease = await new.acquire_lease("run_a", "new-elsewhere:1:b", ttl_seconds=60)
    assert lease.epoch == 2

    with pytest.raises(ConcurrencyError, match="at seq 1 under lease epoch 2, not seq 1 epoch 1"):
        await old.append(
            "run_a", [StepStarted(at=later(1), step_id="a", attempt=1)], expected_seq=1, epoch=1
        )

    assert (
        await new.append(
            "run_a", [StepStarted(at=later(1), step_id="a", attempt=1)], expected_seq=1, epoch=2
        )
        == 2
    )
    assert [s.seq for s in await old.read("run_a")] == [1, 2]


async def test_racing_appends_at_one_position_let_exactly_one_win(
    stores: list[PostgresEventStore],
) -> None:
    await stores[0].create_run(created("run_a"), workflow_name="wf")

    async def append(store: PostgresEventStore, step: str) -> str:
        events = [StepStarted(at=later(1), step_id=step, attempt=1)]
        try:
            await store.append("run_a", events, expected_seq=1, epoch=0)
        except ConcurrencyError:
            return "refused"
        return "won"

    outcomes = await asyncio.gather(*(append(s, f"s{i}") for i, s in enumerate(stores * 3)))

    assert sorted(outcomes) == ["refused"] * 8 + ["won"]
    assert (await stores[0].get_run("run_a")).last_seq == 2


async def test_a_tailing_reader_misses_nothing_while_many_commit_at_once(
    stores: list[PostgresEventStore],
) -> None:
    writers, appends = 6, 15
    for w in range(writers):
        await stores[0].create_run(created(f"run_{w}"), workflow_name="wf")
    done = asyncio.Event()

    async def write(w: int) -> None:
        store = stores[w % len(stores)]
        for i in range(appends):
            events = [
                StepStarted(at=later(i), step_id=f"s{i}", attempt=1),
                StepStarted(at=later(i), step_id="t", attempt=1),
            ]
            await store.append(f"run_{w}", events, expected_seq=1 + 2 * i, epoch=0)

    async def tail() -> list[int]:
        seen: list[int] = []
        while True:
            finished = done.is_set()
            found = await stores[2].read_all(after=seen[-1] if seen else 0, limit=7)
            seen += [position for position, _ in found]
            if finished and not found:
                return seen

    reader = asyncio.create_task(tail())
    await asyncio.gather(*(write(w) for w in range(writers)))
    done.set()
    seen = await reader

    total = writers * (1 + 2 * appends)
    assert seen == list(range(1, total + 1))  # each once, in order, none skipped
    assert await stores[1].last_position() == total


PROCESSES = 8
CHILD = CHILD_SQLITE.replace(
    "from podium.store.sqlite import SQLiteEventStore", "from podium.store import open_store"
).replace("await SQLiteEventStore.open(path)", "await open_store(path)")


async def test_processes_started_at_once_on_a_new_database_each_drive_their_run(
    postgres_url: str, tmp_path: Path
) -> None:
    """Separate processes, as `podium` commands on many machines would be: they migrate the new
    schema together, and each run is driven once."""
    marks = tmp_path / "marks.txt"
    run_ids = [f"run_{i:03}" for i in range(PROCESSES)]
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            postgres_url,
            run_id,
            str(marks),
            stderr=asyncio.subprocess.PIPE,
        )
        for run_id in run_ids
    ]
    results = await asyncio.gather(*(child.communicate() for child in children))

    failures = [err.decode() for c, (_, err) in zip(children, results, strict=True) if c.returncode]
    assert failures == []
    assert Counter(marks.read_text().split()) == dict.fromkeys(run_ids, 1)
    store = await PostgresEventStore.open(postgres_url)
    try:
        records = await store.list_runs(limit=PROCESSES + 1)
        assert sorted(r.run_id for r in records) == run_ids
        assert {(r.status, r.last_seq, r.owner, r.epoch) for r in records} == {
            ("succeeded", 4, None, 1)
        }
        assert await store.last_position() == 4 * PROCESSES
    finally:
        await store.close()


async def test_runs_of_a_dead_local_process_go_to_one_claimer(
    stores: list[PostgresEventStore],
) -> None:
    exited = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await exited.wait()
    dead = f"{socket.gethostname()}:{exited.pid}:x"
    run_ids = [f"run_{i:02}" for i in range(12)]
    for run_id in run_ids:
        await stores[0].create_run(created(run_id), workflow_name="wf")
        await stores[0].acquire_lease(run_id, dead, ttl_seconds=3600)

    async def claim_all(store: PostgresEventStore, owner: str) -> list[str]:
        mine: list[str] = []
        while claims := await store.claim(owner, limit=2, ttl_seconds=60):
            mine += [c.lease.run_id for c in claims]
        return mine

    owners = [f"{socket.gethostname()}:{os.getpid()}:w{i}" for i in range(6)]  # alive
    results = await asyncio.gather(
        *(claim_all(stores[i % len(stores)], owner) for i, owner in enumerate(owners))
    )

    assert sorted(run_id for mine in results for run_id in mine) == run_ids
    assert {(await stores[0].get_run(r)).epoch for r in run_ids} == {2}


async def test_a_signal_racing_a_prune_either_keeps_its_run_or_is_refused(
    stores: list[PostgresEventStore],
) -> None:
    run_ids = [f"run_{i:02}" for i in range(30)]
    for run_id in run_ids:
        await stores[0].create_run(created(run_id), workflow_name="wf")
        done = [RunCompleted(at=later(1), outcome="succeeded")]
        await stores[0].append(run_id, done, expected_seq=1, epoch=0, status="succeeded")

    async def signal(run_id: str) -> bool:
        try:
            await stores[1].post_signal(run_id, "retry", {})
        except RunNotFoundError:
            return False
        return True

    posted, pruned = await asyncio.gather(
        asyncio.gather(*(signal(run_id) for run_id in run_ids)), stores[2].prune()
    )

    gone = {record.run_id for record in pruned}
    for run_id, was_posted in zip(run_ids, posted, strict=True):
        assert was_posted == (run_id not in gone)
        if was_posted:
            assert [s.kind for s in await stores[0].pending_signals(run_id)] == ["retry"]


async def test_exclusive_runs_racing_onto_one_thread_let_one_start(
    stores: list[PostgresEventStore],
) -> None:
    async def start(i: int) -> str:
        first = created(f"run_{i}").model_copy(update={"thread": "t1", "message": "hi"})
        try:
            await stores[i % len(stores)].create_run(first, workflow_name="wf", exclusive=True)
        except ThreadBusyError:
            return "busy"
        return "started"

    outcomes = await asyncio.gather(*(start(i) for i in range(9)))

    assert sorted(outcomes) == ["busy"] * 8 + ["started"]
    assert len(await stores[0].list_runs(thread="t1")) == 1
