"""The EventStore contract: every backend in the matrix behaves the same."""

from __future__ import annotations

import asyncio
import socket
import sys
from datetime import timedelta

import pytest

from podium.core.events import (
    Event,
    RunCancelRequested,
    RunCompleted,
    RunCreated,
    RunResumed,
    StepCancelled,
    StepFailed,
    StepRetrying,
    StepRetryRequested,
    StepSkipped,
    StepStarted,
    StepSucceeded,
)
from podium.errors import (
    ConcurrencyError,
    LeaseHeldError,
    RunExistsError,
    RunNotFoundError,
    ThreadBusyError,
)
from podium.store.base import EventStore, current_owner

from .conftest import PAST_SHORT_SECONDS, SHORT_SECONDS, T0, Backend, created, later


def every_later_event() -> list[Event]:
    return [
        RunResumed(at=later(1), requeued=["a"], interrupted=["b"]),
        StepStarted(at=later(2), step_id="a", attempt=1, generation=2),
        StepSucceeded(
            at=later(3), step_id="a", output={"text": "hé ✓", "n": [1, 2.5, None]}, meta={"k": 1}
        ),
        StepRetrying(
            at=later(4),
            step_id="b",
            attempt=1,
            error="boom",
            error_type="timeout",
            retry_at=later(9),
        ),
        StepFailed(at=later(5), step_id="b", attempt=2, error="boom again"),
        StepSkipped(at=later(6), step_id="c", reason="upstream_failed", message="b failed"),
        StepRetryRequested(at=later(7), step_id="b"),
        StepCancelled(at=later(8), step_id="d", reason="fail_fast"),
        RunCancelRequested(at=later(9), reason="user"),
        RunCompleted(at=later(10), outcome="failed", error="b failed"),
    ]


async def started(store: EventStore, run_id: str = "run_a", steps: int = 1) -> int:
    """Create a run and append `steps` StepStarted events; return the last seq."""
    await store.create_run(created(run_id), workflow_name="wf")
    events = [StepStarted(at=later(i), step_id=f"s{i}", attempt=1) for i in range(steps)]
    return await store.append(run_id, events, expected_seq=1, epoch=0, status="running")


# -- the log ------------------------------------------------------------------------------------


async def test_every_event_type_round_trips(store: EventStore) -> None:
    first = created("run_a")
    await store.create_run(first, workflow_name="wf")
    rest = every_later_event()
    assert await store.append("run_a", rest, expected_seq=1, epoch=0) == 1 + len(rest)

    stored = await store.read("run_a")

    assert [s.event for s in stored] == [first, *rest]
    assert [s.seq for s in stored] == list(range(1, len(rest) + 2))
    assert {s.run_id for s in stored} == {"run_a"}
    assert all(s.event.at.utcoffset() == timedelta(0) for s in stored)


async def test_read_after_seq_returns_the_tail(store: EventStore) -> None:
    await started(store, steps=5)

    tail = await store.read("run_a", after_seq=4)

    assert [s.seq for s in tail] == [5, 6]
    assert await store.read("run_a", after_seq=6) == []


async def test_a_run_is_created_with_the_events_that_must_come_with_it(store: EventStore) -> None:
    first, then = created("run_a"), every_later_event()[:3]
    lease = await store.create_run(
        first, workflow_name="wf", lease_owner="me", ttl_seconds=SHORT_SECONDS, then=then
    )
    assert lease is not None
    assert [(s.seq, s.event) for s in await store.read("run_a")] == list(
        enumerate([first, *then], 1)
    )
    record = await store.get_run("run_a")
    assert (record.last_seq, record.updated_at) == (4, then[-1].at)
    more = [StepFailed(at=later(20), step_id="b", attempt=1, error="x")]
    assert await store.append("run_a", more, expected_seq=4, epoch=lease.epoch) == 5
    with pytest.raises(RunExistsError):  # refused whole: none of its events is added
        await store.create_run(created("run_a"), workflow_name="wf", then=then)
    assert len(await store.read("run_a")) == 5


async def test_duplicate_create_is_refused(store: EventStore) -> None:
    await store.create_run(created("run_a"), workflow_name="wf")

    with pytest.raises(RunExistsError):
        await store.create_run(created("run_a"), workflow_name="other")

    assert (await store.get_run("run_a")).workflow_name == "wf"


async def test_stale_expected_seq_is_refused_and_nothing_is_written(store: EventStore) -> None:
    last = await started(store, steps=2)

    with pytest.raises(ConcurrencyError):
        await store.append(
            "run_a",
            [StepStarted(at=later(9), step_id="x", attempt=1)],
            expected_seq=last - 1,
            epoch=0,
            status="failed",
        )

    assert len(await store.read("run_a")) == last
    record = await store.get_run("run_a")
    assert (record.last_seq, record.status) == (last, "running")


async def test_unknown_run_is_reported(store: EventStore) -> None:
    event = StepStarted(at=T0, step_id="a", attempt=1)
    with pytest.raises(RunNotFoundError):
        await store.append("nope", [event], expected_seq=1, epoch=0)
    with pytest.raises(RunNotFoundError):
        await store.read("nope")
    with pytest.raises(RunNotFoundError):
        await store.get_run("nope")
    with pytest.raises(RunNotFoundError):
        await store.acquire_lease("nope", current_owner(), ttl_seconds=5)
    with pytest.raises(RunNotFoundError):
        await store.post_signal("nope", "cancel", {})
    with pytest.raises(RunNotFoundError):
        await store.pending_signals("nope")


async def test_concurrent_appends_to_many_runs_all_commit_in_order(store: EventStore) -> None:
    run_ids = [f"run_{i:03}" for i in range(40)]
    await asyncio.gather(*(store.create_run(created(r), workflow_name="wf") for r in run_ids))

    async def drive(run_id: str) -> None:
        seq = 1
        for turn in range(15):
            events = [StepStarted(at=later(turn), step_id=f"s{turn}", attempt=1)] * 2
            seq = await store.append(run_id, events, expected_seq=seq, epoch=0)

    await asyncio.gather(*(drive(r) for r in run_ids))

    for run_id in run_ids:
        stored = await store.read(run_id)
        assert [s.seq for s in stored] == list(range(1, 32))
        assert [s.event.kind for s in stored[1:3]] == ["step.started", "step.started"]
        assert (await store.get_run(run_id)).last_seq == 31


async def test_racing_appends_to_one_run_have_exactly_one_winner(store: EventStore) -> None:
    last = await started(store)
    event = StepStarted(at=later(5), step_id="x", attempt=1)

    results = await asyncio.gather(
        *(store.append("run_a", [event], expected_seq=last, epoch=0) for _ in range(5)),
        return_exceptions=True,
    )

    assert results.count(last + 1) == 1
    assert sum(isinstance(r, ConcurrencyError) for r in results) == 4
    assert len(await store.read("run_a")) == last + 1


async def test_append_sets_and_clears_the_wake_up(store: EventStore) -> None:
    last = await started(store)
    wake_at = T0 + timedelta(minutes=5, microseconds=7)

    last = await store.append(
        "run_a", [RunResumed(at=later(1))], expected_seq=last, epoch=0, wake_at=wake_at
    )
    assert (await store.get_run("run_a")).wake_at == wake_at
    assert [r.wake_at for r in await store.list_runs()] == [wake_at]

    await store.append("run_a", [RunResumed(at=later(2))], expected_seq=last, epoch=0)
    assert (await store.get_run("run_a")).wake_at is None


async def test_a_refused_append_leaves_the_wake_up(store: EventStore) -> None:
    last = await started(store)
    wake_at = T0 + timedelta(minutes=5)
    await store.append("run_a", [], expected_seq=last, epoch=0, wake_at=wake_at)

    with pytest.raises(ConcurrencyError):
        await store.append("run_a", [], expected_seq=last - 1, epoch=0)

    assert (await store.get_run("run_a")).wake_at == wake_at


async def test_the_store_clock_is_aware_utc_and_moves_forward(backend: Backend) -> None:
    first = await backend.store.now()
    await backend.advance(0.01)
    second = await backend.store.now()

    assert first.utcoffset() == timedelta(0)
    assert second > first


# -- the listing projection ---------------------------------------------------------------------


async def test_status_projection_follows_appends(store: EventStore) -> None:
    await store.create_run(created("run_a"), workflow_name="wf")
    pending = await store.get_run("run_a")
    assert (pending.status, pending.last_seq, pending.epoch, pending.owner) == (
        "pending",
        1,
        0,
        None,
    )
    assert pending.created_at == T0

    await store.append(
        "run_a", [RunResumed(at=later(1))], expected_seq=1, epoch=0, status="running"
    )
    await store.append(
        "run_a", [StepStarted(at=later(2), step_id="a", attempt=1)], expected_seq=2, epoch=0
    )

    running = await store.get_run("run_a")
    assert (running.status, running.last_seq, running.updated_at) == ("running", 3, later(2))


async def test_list_runs_is_newest_first_and_filters_by_status(store: EventStore) -> None:
    for i in range(4):
        await store.create_run(created(f"run_{i}", at=later(i)), workflow_name=f"wf{i}")
    done = RunCompleted(at=later(10), outcome="succeeded")
    await store.append("run_1", [done], expected_seq=1, epoch=0, status="succeeded")

    everything = await store.list_runs()
    assert [r.run_id for r in everything] == ["run_3", "run_2", "run_1", "run_0"]
    assert [r.run_id for r in await store.list_runs(limit=2)] == ["run_3", "run_2"]
    assert [r.run_id for r in await store.list_runs(statuses=["succeeded"])] == ["run_1"]
    pending = await store.list_runs(statuses=["pending", "running"])
    assert [r.run_id for r in pending] == ["run_3", "run_2", "run_0"]
    assert await store.list_runs(statuses=[]) == []


# -- leases -------------------------------------------------------------------------------------


async def test_a_free_lease_is_taken_with_a_new_epoch(store: EventStore) -> None:
    await started(store)
    owner = current_owner()
    before = await store.now()

    lease = await store.acquire_lease("run_a", owner, ttl_seconds=30)

    assert (lease.owner, lease.epoch) == (owner, 1)
    after = await store.now()
    ttl = timedelta(seconds=30)
    assert before + ttl <= lease.expires_at <= after + ttl
    record = await store.get_run("run_a")
    assert (record.owner, record.epoch, record.lease_expires_at) == (owner, 1, lease.expires_at)


async def test_a_live_owner_keeps_its_lease(store: EventStore) -> None:
    await started(store)
    holder = current_owner()
    await store.acquire_lease("run_a", holder, ttl_seconds=30)

    with pytest.raises(LeaseHeldError) as caught:
        await store.acquire_lease("run_a", current_owner(), ttl_seconds=30)

    assert caught.value.owner == holder


async def test_an_expired_lease_is_taken_over_on_the_store_clock(backend: Backend) -> None:
    store = backend.store
    await started(store)
    await store.acquire_lease("run_a", current_owner(), ttl_seconds=SHORT_SECONDS)
    with pytest.raises(LeaseHeldError):
        await store.acquire_lease("run_a", "other-host:1:abc", ttl_seconds=30)
    await backend.advance(PAST_SHORT_SECONDS)

    lease = await store.acquire_lease("run_a", "other-host:1:abc", ttl_seconds=30)

    assert lease.epoch == 2
    assert lease.taken_from is not None  # its holder never gave it back: a crashed driver


async def test_a_dead_local_process_loses_its_lease_at_once(store: EventStore) -> None:
    await started(store)
    exited = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await exited.wait()
    dead_owner = f"{socket.gethostname()}:{exited.pid}:x"
    await store.acquire_lease("run_a", dead_owner, ttl_seconds=3600)

    lease = await store.acquire_lease("run_a", current_owner(), ttl_seconds=30)

    assert lease.epoch == 2
    assert lease.taken_from == dead_owner


async def test_a_lease_given_back_or_never_held_was_not_taken_from_anyone(
    store: EventStore,
) -> None:
    await started(store)
    owner = current_owner()
    first = await store.acquire_lease("run_a", owner, ttl_seconds=30)
    assert first.taken_from is None  # never held
    assert (await store.renew_lease(first, ttl_seconds=30)).taken_from is None
    ours = await store.acquire_lease("run_a", owner, ttl_seconds=30)
    assert ours.taken_from is None  # we held it ourselves
    await store.release_lease(ours)

    again = await store.acquire_lease("run_a", current_owner(), ttl_seconds=30)

    assert again.taken_from is None  # released: handed back, not crashed


async def test_a_stale_epoch_is_fenced_off(backend: Backend) -> None:
    store = backend.store
    last = await started(store)
    old = await store.acquire_lease("run_a", current_owner(), ttl_seconds=0.05)
    last = await store.append("run_a", [RunResumed(at=later(1))], expected_seq=last, epoch=1)
    await backend.advance(0.1)
    new = await store.acquire_lease("run_a", current_owner(), ttl_seconds=30)

    with pytest.raises(ConcurrencyError):
        await store.append("run_a", [RunResumed(at=later(2))], expected_seq=last, epoch=old.epoch)
    with pytest.raises(ConcurrencyError):
        await store.renew_lease(old, ttl_seconds=30)
    await store.release_lease(old)

    assert (
        await store.append("run_a", [RunResumed(at=later(3))], expected_seq=last, epoch=new.epoch)
        == last + 1
    )
    assert (await store.get_run("run_a")).owner == new.owner


async def test_renew_extends_and_release_frees_keeping_the_epoch(store: EventStore) -> None:
    await started(store)
    lease = await store.acquire_lease("run_a", current_owner(), ttl_seconds=1)

    renewed = await store.renew_lease(lease, ttl_seconds=60)
    assert renewed.epoch == lease.epoch
    assert renewed.expires_at > lease.expires_at
    await store.release_lease(renewed)

    record = await store.get_run("run_a")
    assert (record.owner, record.epoch) == (None, 1)
    again = await store.acquire_lease("run_a", current_owner(), ttl_seconds=30)
    assert again.epoch == 2


# -- signals and retention ----------------------------------------------------------------------


async def test_signals_are_listed_until_an_append_consumes_them(store: EventStore) -> None:
    last = await started(store)
    await store.create_run(created("run_b"), workflow_name="wf")
    cancel = await store.post_signal("run_a", "cancel", {"reason": "user"})
    retry = await store.post_signal("run_a", "retry", {"step_id": "a"})
    await store.post_signal("run_b", "skip", {"step_id": "z"})

    pending = await store.pending_signals("run_a")
    assert [(s.id, s.kind, s.payload) for s in pending] == [
        (cancel, "cancel", {"reason": "user"}),
        (retry, "retry", {"step_id": "a"}),
    ]
    assert all(s.run_id == "run_a" and s.created_at.tzinfo for s in pending)

    event = RunCancelRequested(at=later(5), reason="user")
    await store.append("run_a", [event], expected_seq=last, epoch=0, consumed_signals=[cancel])

    assert [s.id for s in await store.pending_signals("run_a")] == [retry]
    assert len(await store.pending_signals("run_b")) == 1


async def test_a_refused_append_consumes_no_signal(store: EventStore) -> None:
    await started(store)
    signal = await store.post_signal("run_a", "cancel", {})

    with pytest.raises(ConcurrencyError):
        await store.append("run_a", [], expected_seq=1, epoch=0, consumed_signals=[signal])

    assert [s.id for s in await store.pending_signals("run_a")] == [signal]


# -- threads ------------------------------------------------------------------------------------


def on_thread(run_id: str, thread: str, seconds: float = 0) -> RunCreated:
    return created(run_id, later(seconds)).model_copy(update={"thread": thread, "message": "hi"})


async def test_a_threads_runs_are_listed_by_the_thread_filter(store: EventStore) -> None:
    await store.create_run(on_thread("run_1", "t1", 1), workflow_name="thread")
    await store.create_run(on_thread("run_2", "t2", 2), workflow_name="thread")
    await store.create_run(on_thread("run_3", "t1", 3), workflow_name="thread")
    await store.create_run(created("run_4", later(4)), workflow_name="wf")

    runs = await store.list_runs(thread="t1")
    assert [(r.run_id, r.thread) for r in runs] == [("run_3", "t1"), ("run_1", "t1")]
    assert (await store.get_run("run_4")).thread is None
    assert [r.run_id for r in await store.list_runs(thread="t1", limit=1)] == ["run_3"]
    assert [r.run_id for r in await store.list_runs(thread="t1", after="run_3")] == ["run_1"]
    assert await store.list_runs(thread="t1", statuses=["running"]) == []
    assert await store.list_runs(thread="nope") == []

    listed = await store.list_threads()
    assert [(t.thread, t.runs, t.last_run.run_id) for t in listed] == [
        ("t1", 2, "run_3"),
        ("t2", 1, "run_2"),
    ]
    assert [t.thread for t in await store.list_threads(limit=1)] == ["t1"]


async def test_an_exclusive_create_is_refused_while_a_run_on_its_thread_is_live(
    store: EventStore,
) -> None:
    await store.create_run(on_thread("run_1", "t1"), workflow_name="thread")
    await store.create_run(on_thread("run_x", "t2", 1), workflow_name="thread", exclusive=True)

    with pytest.raises(ThreadBusyError) as refused:
        await store.create_run(on_thread("run_2", "t1", 1), workflow_name="thread", exclusive=True)
    assert refused.value.run_id == "run_1"
    assert "thread t1 is busy" in str(refused.value)
    with pytest.raises(RunNotFoundError):
        await store.get_run("run_2")

    await store.create_run(on_thread("run_3", "t1", 2), workflow_name="thread")  # queued: allowed
    finished = RunCompleted(at=later(3), outcome="succeeded")
    for run_id in ("run_1", "run_3"):
        await store.append(run_id, [finished], expected_seq=1, epoch=0, status="succeeded")
    await store.create_run(on_thread("run_4", "t1", 4), workflow_name="thread", exclusive=True)
    assert [r.run_id for r in await store.list_runs(thread="t1")] == ["run_4", "run_3", "run_1"]


async def test_concurrent_exclusive_creates_on_one_thread_start_exactly_one(
    backend: Backend,
) -> None:
    other = await backend.other()
    stores = [backend.store, other] * 4
    attempts = [
        store.create_run(on_thread(f"run_{i}", "t1", i), workflow_name="thread", exclusive=True)
        for i, store in enumerate(stores)
    ]
    results = await asyncio.gather(*attempts, return_exceptions=True)

    refused = [r for r in results if isinstance(r, ThreadBusyError)]
    assert len(refused) == len(stores) - 1, results
    assert len(await backend.store.list_runs(thread="t1")) == 1
