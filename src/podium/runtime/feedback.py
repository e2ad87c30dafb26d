"""`Engine.feedback`: a person's rating of a finished step, recorded as `step.feedback` in the
run's log whether the run is live here, live in another process, parked, or long finished.

How it is written, so it never races the run's driver and never appends without the lease:

1. the rating is checked against the committed run (bad input raises; nothing is recorded);
2. it is posted as a `feedback` signal, so it is durable at once;
3. then the first of these settles it:
   - the lease is free (nobody drives the run: it finished, is parked, or its driver died):
     take it for a moment under an owner of our own, turn every pending `feedback` signal into
     its event (checked again against the run as committed under the lease), append them with
     the lease's epoch, marking the signals consumed and keeping the run's status and timer,
     then release it;
   - a live driver holds it (in this engine or another process): it reads the signal on its
     next turn and records it like any control signal (core/feedback.py, via core/turn.py).
   A signal refused on the way (its step was retried meanwhile) raises with the reason.

If no driver consumes it within `FEEDBACK_WAIT_SECONDS` (one queued behind an engine's run
limit), `feedback` returns False: the signal stays in the inbox and whoever drives the run next
records it. A feedback event does not move the run's `updated_at` (core/fold.py).
"""

from __future__ import annotations

import asyncio
import getpass
import time
from typing import Protocol

from podium.core import events as ev
from podium.core.feedback import feedback_event, feedback_payload, feedback_signal_event
from podium.core.happenings import ControlSignal
from podium.errors import InvalidTransitionError, LeaseHeldError
from podium.runtime.reads import committed_state
from podium.store.base import EventStore, current_owner

FEEDBACK_WAIT_SECONDS = 10.0  # how long to wait for a live driver to record it
FEEDBACK_LEASE_SECONDS = 15.0  # the brief lease taken to append to a run nobody drives
POLL_SECONDS = 0.25


class _Host(Protocol):
    store: EventStore


async def record_feedback(
    engine: _Host,
    run_id: str,
    step_id: str,
    rating: str,
    comment: str | None = None,
    *,
    who: str | None = None,
) -> bool:
    """Rate finished step `step_id` of `run_id` up or down, with an optional comment (at most
    2,000 characters), as `who` (the server gives its caller's token), else the OS user
    running this. True once it is in the run's log; False if
    it waits in the inbox for the run's busy driver. StepNotFoundError, InvalidTransitionError
    or UsageError (nothing recorded) if it does not fit."""
    store = engine.store
    state = await committed_state(store, run_id)
    now = await store.now()
    event = feedback_event(state, step_id, rating, comment=comment, who=who or _who(), now=now)
    event = state.redactor.model(event)  # the signal is stored too: no key in a comment
    signal_id = await store.post_signal(run_id, "feedback", feedback_payload(event))
    return await _settle(store, run_id, signal_id, seen=state.seq)


async def _settle(store: EventStore, run_id: str, signal_id: int, *, seen: int) -> bool:
    """Record the signal under a brief lease, or wait for the live driver to: True once it is
    in the log, False if it still waits when the time is up."""
    deadline = time.monotonic() + FEEDBACK_WAIT_SECONDS
    last = seen
    while True:
        recorded = await _record_pending(store, run_id)
        if signal_id in recorded:
            return _accepted(run_id, recorded[signal_id])
        if signal_id not in {s.id for s in await store.pending_signals(run_id)}:
            return _accepted(run_id, await _fate(store, run_id, signal_id, seen))
        if time.monotonic() >= deadline:
            return False
        news = await store.wait_for_events(run_id, after_seq=last, timeout_seconds=POLL_SECONDS)
        last = news[-1].seq if news else last


async def _record_pending(store: EventStore, run_id: str) -> dict[int, ev.Event]:
    """If nobody holds the run's lease: take it, append an event for every pending feedback
    signal, release it; return the events by signal id ({} if the lease is held)."""
    try:
        lease = await store.acquire_lease(
            run_id, current_owner(), ttl_seconds=FEEDBACK_LEASE_SECONDS
        )
    except LeaseHeldError:
        return {}
    try:
        pending = [s for s in await store.pending_signals(run_id) if s.kind == "feedback"]
        if not pending:
            return {}
        state = await committed_state(store, run_id)
        record = await store.get_run(run_id)
        now = await store.now()
        redact = state.redactor.model  # the key formats: a comment may quote one
        events = {
            s.id: redact(feedback_signal_event(state, ControlSignal(s.id, s.kind, s.payload), now))
            for s in pending
        }
        await store.append(
            run_id,
            list(events.values()),
            expected_seq=state.seq,
            epoch=lease.epoch,
            consumed_signals=list(events),
            wake_at=record.wake_at,
        )
        return events
    finally:
        await asyncio.shield(store.release_lease(lease))


async def _fate(store: EventStore, run_id: str, signal_id: int, seen: int) -> ev.Event | None:
    """What the driver made of the signal it consumed: its `signal.refused`, if it refused it."""
    for stored in await store.read(run_id, after_seq=seen):
        event = stored.event
        if isinstance(event, ev.SignalRefused) and event.signal_id == signal_id:
            return event
    return None


def _accepted(run_id: str, event: ev.Event | None) -> bool:
    if isinstance(event, ev.SignalRefused):
        raise InvalidTransitionError(
            f"the feedback was not recorded: {event.reason}", run_id=run_id, step_id=event.step_id
        )
    return True


def _who() -> str:
    """The OS user name of this process ("unknown" where the system has none for it)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"
