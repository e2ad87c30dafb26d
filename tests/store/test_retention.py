"""The EventStore contract, listing and retention: paging through runs, pruning finished ones."""

from __future__ import annotations

import pytest

from podium.core.events import RunCompleted
from podium.errors import RunNotFoundError, UsageError
from podium.store.base import EventStore, RunStatus

from .conftest import PAST_SHORT_SECONDS, SHORT_SECONDS, Backend, created, later

# -- list_runs ----------------------------------------------------------------------------------


async def test_pages_continue_strictly_after_the_cursor(store: EventStore) -> None:
    for i in range(7):
        await store.create_run(created(f"run_{i}", at=later(i // 2)), workflow_name="wf")
    everything = [r.run_id for r in await store.list_runs()]
    # newest first; runs created at the same instant by run_id, descending
    assert everything == ["run_6", "run_5", "run_4", "run_3", "run_2", "run_1", "run_0"]

    pages, after = [], None
    while page := await store.list_runs(limit=3, after=after):
        pages.append([r.run_id for r in page])
        after = page[-1].run_id

    assert pages == [everything[:3], everything[3:6], everything[6:]]


async def test_filters_combine_with_paging(store: EventStore) -> None:
    for i in range(6):
        await store.create_run(created(f"run_{i}", at=later(i)), workflow_name=f"wf{i % 2}")
    done = RunCompleted(at=later(10), outcome="succeeded")
    for run_id in ("run_1", "run_3", "run_4"):
        await store.append(run_id, [done], expected_seq=1, epoch=0, status="succeeded")

    def ids(records: list) -> list[str]:  # type: ignore[type-arg]
        return [r.run_id for r in records]

    assert ids(await store.list_runs(workflow_name="wf1")) == ["run_5", "run_3", "run_1"]
    assert ids(await store.list_runs(workflow_name="wf1", statuses=["succeeded"])) == [
        "run_3",
        "run_1",
    ]
    assert ids(await store.list_runs(workflow_name="wf1", after="run_3")) == ["run_1"]
    assert ids(await store.list_runs(statuses=["succeeded"], after="run_5", limit=1)) == ["run_4"]
    assert ids(await store.list_runs(workflow_name="nope")) == []
    assert await store.list_runs(limit=0) == []


async def test_an_unknown_cursor_is_reported(store: EventStore) -> None:
    await store.create_run(created("run_a"), workflow_name="wf")

    with pytest.raises(RunNotFoundError):
        await store.list_runs(after="run_gone")


# -- prune --------------------------------------------------------------------------------------


async def finished(store: EventStore, run_id: str, status: RunStatus, at: float) -> None:
    await store.create_run(created(run_id), workflow_name="wf")
    event = RunCompleted(at=later(at), outcome="succeeded")
    await store.append(run_id, [event], expected_seq=1, epoch=0, status=status)


async def test_prune_deletes_only_old_finished_runs(store: EventStore) -> None:
    runs: list[tuple[str, RunStatus, int]] = [
        ("old_done", "succeeded", 10),
        ("old_failed", "failed", 20),
        ("old_running", "running", 10),
        ("new_done", "cancelled", 100),
    ]
    for run_id, status, finished_at in runs:
        await store.create_run(created(run_id), workflow_name="wf")
        signal = await store.post_signal(run_id, "cancel", {})
        event = RunCompleted(at=later(finished_at), outcome="succeeded")
        await store.append(
            run_id, [event], expected_seq=1, epoch=0, status=status, consumed_signals=[signal]
        )

    pruned = await store.prune(finished_before=later(50))
    assert sorted((r.run_id, r.status) for r in pruned) == [
        ("old_done", "succeeded"),
        ("old_failed", "failed"),
    ]

    left = {r.run_id for r in await store.list_runs()}
    assert left == {"old_running", "new_done"}
    for gone in ("old_done", "old_failed"):
        with pytest.raises(RunNotFoundError):
            await store.read(gone)
        with pytest.raises(RunNotFoundError):
            await store.pending_signals(gone)
    assert len(await store.read("new_done")) == 2
    assert await store.prune(finished_before=later(50)) == []


async def test_prune_by_status_at_any_time_and_dry_run(store: EventStore) -> None:
    await finished(store, "run_ok", "succeeded", 1)
    await finished(store, "run_bad", "failed", 2)
    await finished(store, "run_stop", "cancelled", 3)

    preview = await store.prune(statuses=["failed", "cancelled"], dry_run=True)
    assert [r.run_id for r in preview] == ["run_stop", "run_bad"]
    assert len(await store.list_runs()) == 3

    removed = await store.prune(statuses=["failed", "cancelled"])
    assert removed == preview
    assert [r.run_id for r in await store.list_runs()] == ["run_ok"]
    assert await store.prune(statuses=[]) == []


async def test_unfinished_statuses_cannot_be_pruned(store: EventStore) -> None:
    for statuses in (["running"], ["succeeded", "waiting"], ["pending"]):
        with pytest.raises(UsageError, match="only finished runs can be pruned"):
            await store.prune(statuses=statuses)  # type: ignore[arg-type]


async def test_prune_keeps_runs_about_to_reopen_or_being_driven(backend: Backend) -> None:
    store = backend.store
    await finished(store, "run_signalled", "succeeded", 1)
    await store.post_signal("run_signalled", "retry", {"step_id": "a"})
    await finished(store, "run_driven", "failed", 1)
    await store.acquire_lease("run_driven", "driver-host:1:d", ttl_seconds=SHORT_SECONDS)
    await store.create_run(created("run_parked"), workflow_name="wf")
    parked_until = await store.now()
    await store.append(
        "run_parked", [], expected_seq=1, epoch=0, status="waiting", wake_at=parked_until
    )

    assert await store.prune() == []

    await backend.advance(PAST_SHORT_SECONDS)  # the lease expired: nobody drives run_driven
    assert [r.run_id for r in await store.prune()] == ["run_driven"]
    assert {r.run_id for r in await store.list_runs()} == {"run_signalled", "run_parked"}


async def test_a_pruned_run_is_unknown_everywhere(store: EventStore) -> None:
    await finished(store, "run_a", "succeeded", 1)
    await store.prune()

    with pytest.raises(RunNotFoundError):
        await store.get_run("run_a")
    with pytest.raises(RunNotFoundError):
        await store.read("run_a")
    with pytest.raises(RunNotFoundError):
        await store.post_signal("run_a", "retry", {"step_id": "a"})
    with pytest.raises(RunNotFoundError):
        await store.pending_signals("run_a")
    with pytest.raises(RunNotFoundError):
        await store.acquire_lease("run_a", "driver-host:1:d", ttl_seconds=30)
    with pytest.raises(RunNotFoundError):
        await store.wait_for_events("run_a", after_seq=0, timeout_seconds=0.01)
    await store.create_run(created("run_a"), workflow_name="wf")  # the id is free again
