"""The EventStore contract, followers: waiting for a run's new events and for any change.

The writer is a second handle on the same data (for SQLite another store object on the file, so
the change must travel through the database, not this store's own notification). A waiter is
started as a task and given one turn of the loop: by then it has taken its token and waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from podium.core.events import StepStarted
from podium.errors import RunNotFoundError
from podium.store.base import EventStore

from .conftest import Backend, created, later

T = TypeVar("T")
LONG = 30.0
"""A timeout no passing test reaches: the waits must end because of the commit."""


async def waiting(wait: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
    task = asyncio.ensure_future(wait())
    await asyncio.sleep(0)  # one turn: the waiter has its token and is blocked
    assert not task.done()
    return task


async def test_events_already_there_are_returned_at_once(store: EventStore) -> None:
    await store.create_run(created("run_a"), workflow_name="wf")

    events = await store.wait_for_events("run_a", after_seq=0, timeout_seconds=LONG)

    assert [e.seq for e in events] == [1]


async def test_waiting_for_events_times_out_empty(store: EventStore) -> None:
    await store.create_run(created("run_a"), workflow_name="wf")

    assert await store.wait_for_events("run_a", after_seq=1, timeout_seconds=0.05) == []
    assert await store.wait_for_events("run_a", after_seq=1, timeout_seconds=0) == []
    with pytest.raises(RunNotFoundError):
        await store.wait_for_events("nope", after_seq=0, timeout_seconds=0.05)


async def test_a_follower_wakes_on_another_writers_append(backend: Backend) -> None:
    await backend.store.create_run(created("run_a"), workflow_name="wf")
    writer = await backend.other()
    follower = await waiting(
        lambda: backend.store.wait_for_events("run_a", after_seq=1, timeout_seconds=LONG)
    )

    event = StepStarted(at=later(1), step_id="a", attempt=1)
    await writer.append("run_a", [event, event], expected_seq=1, epoch=0)

    assert [(e.seq, e.event) for e in await follower] == [(2, event), (3, event)]


async def test_a_follower_is_not_woken_by_other_runs(backend: Backend) -> None:
    for run_id in ("run_a", "run_b"):
        await backend.store.create_run(created(run_id), workflow_name="wf")
    writer = await backend.other()
    follower = await waiting(
        lambda: backend.store.wait_for_events("run_a", after_seq=1, timeout_seconds=LONG)
    )

    event = StepStarted(at=later(1), step_id="a", attempt=1)
    await writer.append("run_b", [event], expected_seq=1, epoch=0)
    await writer.post_signal("run_a", "cancel", {})
    assert not follower.done()
    await writer.append("run_a", [event], expected_seq=1, epoch=0)

    assert [e.seq for e in await follower] == [2]


async def test_waiting_for_a_change_times_out_false(store: EventStore) -> None:
    await store.create_run(created("run_a"), workflow_name="wf")

    assert await store.wait_for_change(timeout_seconds=0.05) is False
    assert await store.wait_for_change(timeout_seconds=0) is False


@pytest.mark.parametrize(
    "change",
    ["create_run", "append", "post_signal", "acquire_lease", "release_lease", "claim"],
)
async def test_any_commit_by_anyone_is_a_change(backend: Backend, change: str) -> None:
    await backend.store.create_run(created("run_a"), workflow_name="wf")
    writer = await backend.other()
    lease = await writer.acquire_lease("run_a", "other-host:1:x", ttl_seconds=LONG)
    commits: dict[str, Callable[[], Awaitable[object]]] = {
        "create_run": lambda: writer.create_run(created("run_b"), workflow_name="wf"),
        "append": lambda: writer.append("run_a", [], expected_seq=1, epoch=lease.epoch),
        "post_signal": lambda: writer.post_signal("run_a", "cancel", {}),
        "acquire_lease": lambda: writer.acquire_lease("run_a", "other-host:1:x", ttl_seconds=1),
        "release_lease": lambda: writer.release_lease(lease),
        "claim": lambda: writer.claim("w-host:1:x", limit=1, ttl_seconds=1),
    }
    if change == "claim":
        await writer.release_lease(lease)
    watcher = await waiting(lambda: backend.store.wait_for_change(timeout_seconds=LONG))

    await commits[change]()

    assert await watcher is True


async def test_this_stores_own_commits_are_changes(store: EventStore) -> None:
    watcher = await waiting(lambda: store.wait_for_change(timeout_seconds=LONG))

    await store.create_run(created("run_a"), workflow_name="wf")

    assert await watcher is True
