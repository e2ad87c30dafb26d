"""The EventStore contract, claims: which runs are runnable, why, in what order, and never twice."""

from __future__ import annotations

import asyncio
import socket
import sys
from datetime import datetime, timedelta

import pytest

from podium.core.events import RunCompleted, RunResumed
from podium.errors import ConcurrencyError
from podium.store.base import EventStore, RunStatus, current_owner

from .conftest import PAST_SHORT_SECONDS, SHORT_SECONDS, Backend, created, later

WORKER = "worker-host:1:w"
"""A claimer on another host: always alive as far as this host can tell."""


async def parked(
    store: EventStore,
    run_id: str,
    status: RunStatus,
    *,
    wake_at: datetime | None = None,
    at: datetime | None = None,
) -> None:
    """A run that a driver took, moved to `status` (with a timer) and let go of."""
    await store.create_run(created(run_id, at=at or later(0)), workflow_name="wf")
    lease = await store.acquire_lease(run_id, "driver-host:1:d", ttl_seconds=30)
    event = RunCompleted(at=later(1), outcome="succeeded") if status == "succeeded" else None
    await store.append(
        run_id,
        [event or RunResumed(at=later(1))],
        expected_seq=1,
        epoch=lease.epoch,
        status=status,
        wake_at=wake_at,
    )
    await store.release_lease(lease)


async def claimed(store: EventStore, limit: int = 10, owner: str = WORKER) -> list[tuple[str, str]]:
    return [
        (c.lease.run_id, c.reason) for c in await store.claim(owner, limit=limit, ttl_seconds=30)
    ]


async def test_pending_runs_are_claimed_with_a_new_epoch(store: EventStore) -> None:
    await store.create_run(created("run_a"), workflow_name="wf")
    before = await store.now()

    [claim] = await store.claim(WORKER, limit=5, ttl_seconds=30)

    after = await store.now()
    assert (claim.reason, claim.lease.run_id, claim.lease.owner, claim.lease.epoch) == (
        "pending",
        "run_a",
        WORKER,
        1,
    )
    ttl = timedelta(seconds=30)
    assert before + ttl <= claim.lease.expires_at <= after + ttl
    record = await store.get_run("run_a")
    assert (record.owner, record.epoch, record.lease_expires_at) == (
        WORKER,
        1,
        claim.lease.expires_at,
    )
    assert await claimed(store, owner="another-host:2:x") == []
    assert claim.lease.taken_from is None


async def test_a_claim_says_whom_it_took_an_orphaned_run_from(backend: Backend) -> None:
    store = backend.store
    await parked(store, "run_given_back", "running")
    await store.create_run(created("run_lost", at=later(0)), workflow_name="wf")
    lost = await store.acquire_lease("run_lost", "gone-host:1:g", ttl_seconds=SHORT_SECONDS)
    last = [RunResumed(at=later(1))]
    await store.append("run_lost", last, expected_seq=1, epoch=lost.epoch, status="running")
    await backend.advance(PAST_SHORT_SECONDS)

    claims = {c.lease.run_id: c for c in await store.claim(WORKER, limit=5, ttl_seconds=30)}

    assert claims["run_lost"].reason == "orphaned"
    assert claims["run_lost"].lease.taken_from == "gone-host:1:g"
    assert claims["run_given_back"].reason == "orphaned"
    assert claims["run_given_back"].lease.taken_from is None


async def test_a_live_lease_is_never_claimed(store: EventStore) -> None:
    await store.create_run(created("run_live"), workflow_name="wf")
    await store.acquire_lease("run_live", current_owner(), ttl_seconds=30)  # this process: alive
    await store.create_run(created("run_mine"), workflow_name="wf")
    await store.acquire_lease("run_mine", WORKER, ttl_seconds=30)  # the claimer already drives it
    await store.post_signal("run_live", "cancel", {})
    await store.post_signal("run_mine", "cancel", {})

    assert await claimed(store) == []


async def test_a_due_timer_makes_a_parked_run_runnable(backend: Backend) -> None:
    store = backend.store
    now = await store.now()
    await parked(store, "run_due", "waiting", wake_at=now + timedelta(seconds=SHORT_SECONDS))
    await parked(store, "run_done", "succeeded", wake_at=now - timedelta(seconds=1))
    assert await claimed(store) == []

    await backend.advance(PAST_SHORT_SECONDS)

    assert await claimed(store) == [("run_due", "due")]
    assert (await store.get_run("run_due")).epoch == 2


async def test_a_waiting_run_without_timer_or_signal_waits_for_a_person(store: EventStore) -> None:
    await parked(store, "run_w", "waiting")
    assert await claimed(store) == []

    await store.post_signal("run_w", "approve", {"step_id": "a"})

    assert await claimed(store) == [("run_w", "signalled")]


async def test_a_signal_reopens_a_finished_run(store: EventStore) -> None:
    await parked(store, "run_done", "succeeded")
    assert await claimed(store) == []

    await store.post_signal("run_done", "retry", {"step_id": "a"})

    assert await claimed(store) == [("run_done", "signalled")]


async def test_running_runs_without_a_live_driver_are_orphaned(backend: Backend) -> None:
    store = backend.store
    await parked(store, "run_released", "running")
    await parked(store, "run_expiring", "running")
    await store.acquire_lease("run_expiring", "driver-host:1:d", ttl_seconds=SHORT_SECONDS)
    await parked(store, "run_dead", "running")
    exited = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await exited.wait()
    await store.acquire_lease("run_dead", f"{socket.gethostname()}:{exited.pid}:x", ttl_seconds=60)
    assert sorted(await claimed(store)) == [("run_dead", "orphaned"), ("run_released", "orphaned")]

    await backend.advance(PAST_SHORT_SECONDS)

    assert await claimed(store) == [("run_expiring", "orphaned")]


async def test_a_claim_fences_off_the_previous_driver(store: EventStore) -> None:
    await store.create_run(created("run_a"), workflow_name="wf")
    old = await store.acquire_lease("run_a", "driver-host:1:d", ttl_seconds=30)
    last = await store.append("run_a", [], expected_seq=1, epoch=old.epoch, status="running")
    await store.release_lease(old)

    [claim] = await store.claim(WORKER, limit=1, ttl_seconds=30)

    assert claim.lease.epoch == old.epoch + 1
    with pytest.raises(ConcurrencyError):
        await store.append("run_a", [RunResumed(at=later(2))], expected_seq=last, epoch=old.epoch)
    new = [RunResumed(at=later(2))]
    assert await store.append("run_a", new, expected_seq=last, epoch=claim.lease.epoch) == 2


async def test_the_most_overdue_come_first_up_to_the_limit(store: EventStore) -> None:
    now = await store.now()

    def ago(seconds: float) -> datetime:
        return now - timedelta(seconds=seconds)

    await store.create_run(created("run_p300", at=ago(300)), workflow_name="wf")
    await store.create_run(created("run_p200", at=ago(200)), workflow_name="wf")
    await store.create_run(created("run_tie_b", at=ago(200)), workflow_name="wf")
    await parked(store, "run_due250", "waiting", wake_at=ago(250), at=ago(100))

    assert await claimed(store, limit=0) == []
    assert await claimed(store, limit=-1) == []
    assert await claimed(store, limit=2) == [("run_p300", "pending"), ("run_due250", "due")]
    assert await claimed(store, limit=5) == [("run_p200", "pending"), ("run_tie_b", "pending")]
    assert await claimed(store) == []


async def test_concurrent_claimers_never_share_a_run(backend: Backend) -> None:
    run_ids = [f"run_{i:02}" for i in range(30)]
    for run_id in run_ids:
        await backend.store.create_run(created(run_id), workflow_name="wf")
    stores = [backend.store, await backend.other()]

    async def claim_all(store: EventStore, owner: str) -> list[str]:
        mine: list[str] = []
        while batch := await store.claim(owner, limit=2, ttl_seconds=30):
            mine += [c.lease.run_id for c in batch]
            assert {c.lease.epoch for c in batch} == {1}
        return mine

    owners = [f"w{i}-host:1:x" for i in range(4)]
    results = await asyncio.gather(*(claim_all(stores[i % 2], o) for i, o in enumerate(owners)))

    everything = [run_id for mine in results for run_id in mine]
    assert sorted(everything) == run_ids  # each run exactly once
    for owner, mine in zip(owners, results, strict=True):
        for run_id in mine:
            assert (await backend.store.get_run(run_id)).owner == owner


async def test_a_run_created_with_its_lease_cannot_be_claimed_first(store: EventStore) -> None:
    before = await store.now()
    lease = await store.create_run(
        created("run_a"), workflow_name="wf", lease_owner="driver-host:1:d", ttl_seconds=30
    )
    assert lease is not None
    assert (lease.run_id, lease.owner, lease.epoch) == ("run_a", "driver-host:1:d", 1)
    assert lease.expires_at >= before + timedelta(seconds=29)
    assert await claimed(store) == []
    record = await store.get_run("run_a")
    assert (record.owner, record.epoch, record.status) == ("driver-host:1:d", 1, "pending")
    assert await store.append("run_a", [RunResumed(at=later(1))], expected_seq=1, epoch=1) == 2
    assert await store.create_run(created("run_b"), workflow_name="wf") is None


async def test_a_claim_takes_only_runs_on_the_queues_it_names(store: EventStore) -> None:
    for run_id, queue in (("run_gpu", "gpu"), ("run_io", "io"), ("run_plain", None)):
        event = created(run_id)
        if queue is not None:
            event = event.model_copy(update={"queue": queue})
        await store.create_run(event, workflow_name="wf")
    assert (await store.get_run("run_gpu")).queue == "gpu"
    assert (await store.get_run("run_plain")).queue == "default"
    listed = {r.run_id: r.queue for r in await store.list_runs()}
    assert listed == {"run_gpu": "gpu", "run_io": "io", "run_plain": "default"}

    assert await store.claim(WORKER, limit=5, ttl_seconds=30, queues=["nothing-here"]) == []
    gpu = await store.claim(WORKER, limit=5, ttl_seconds=30, queues=["gpu"])
    assert [c.lease.run_id for c in gpu] == ["run_gpu"]
    rest = await store.claim("w2-host:2:b", limit=5, ttl_seconds=30, queues=["default", "io"])
    assert sorted(c.lease.run_id for c in rest) == ["run_io", "run_plain"]


async def test_a_claim_without_queues_takes_runs_on_any_queue(store: EventStore) -> None:
    await store.create_run(created("run_a").model_copy(update={"queue": "gpu"}), workflow_name="wf")
    await store.create_run(created("run_b"), workflow_name="wf")

    assert sorted(run_id for run_id, _ in await claimed(store)) == ["run_a", "run_b"]


async def test_an_orphaned_run_is_taken_over_only_by_a_worker_of_its_queue(
    backend: Backend,
) -> None:
    store = backend.store
    await store.create_run(created("run_a").model_copy(update={"queue": "gpu"}), workflow_name="wf")
    lost = await store.acquire_lease("run_a", "gone-host:1:g", ttl_seconds=SHORT_SECONDS)
    event = [RunResumed(at=later(1))]
    await store.append("run_a", event, expected_seq=1, epoch=lost.epoch, status="running")
    await backend.advance(PAST_SHORT_SECONDS)

    assert await store.claim(WORKER, limit=5, ttl_seconds=30, queues=["default"]) == []
    [claim] = await store.claim(WORKER, limit=5, ttl_seconds=30, queues=["gpu"])
    assert (claim.lease.run_id, claim.reason) == ("run_a", "orphaned")
