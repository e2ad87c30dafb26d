"""The engine's one timer: a parked run whose wake-up fails on a store fault is tried again,
not forgotten (a run nobody wakes would wait for ever)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from podium.errors import StoreError
from podium.runtime.parking import Waker


async def test_a_wake_up_that_fails_is_tried_again() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    tries: list[str] = []
    woken = asyncio.Event()

    async def clock() -> datetime:
        return now + timedelta(seconds=len(tries) * 2)  # each pass, the retry is due

    async def wake(run_id: str) -> None:
        tries.append(run_id)
        if len(tries) == 1:
            raise StoreError("the store is briefly locked")
        woken.set()

    waker = Waker(now=clock, wake=wake)
    waker.park("r1", now)
    try:
        await asyncio.wait_for(woken.wait(), 10)
    finally:
        await waker.aclose()
    assert tries == ["r1", "r1"]
    assert not waker.is_parked("r1")
