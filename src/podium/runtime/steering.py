"""Retry or skip every step of one kind (`--all-failed`, `--all-interrupted`), for the CLI and
the HTTP API alike: every step is checked first, then each but the last is posted as a signal,
and the last goes through the engine, which drives the run (or wakes its driver) for all."""

from __future__ import annotations

from typing import Literal, Protocol

from podium.core.control import steps_in
from podium.core.state import RunState
from podium.store.base import EventStore

Verb = Literal["retry", "skip"]


class _Engine(Protocol):
    store: EventStore

    async def state(self, run_id: str) -> RunState: ...


async def post_all_but_last(engine: _Engine, verb: Verb, run_id: str, which: str) -> list[str]:
    """Every `which` step (failed, interrupted) of the run, all checked; each but the last is
    posted here. The caller sends the last through `engine.retry` or `engine.skip`."""
    state = await engine.state(run_id)
    steps = steps_in(state, verb, which, state.updated_at or state.created_at)
    for step_id in steps[:-1]:
        await engine.store.post_signal(run_id, verb, {"step_id": step_id})
    return steps
