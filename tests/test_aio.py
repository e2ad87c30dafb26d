"""aio.cancel_and_wait: helper tasks are stopped and waited for, and a cancellation of the caller
that lands meanwhile is never swallowed (it once kept SSE streams open after their run ended)."""

from __future__ import annotations

import asyncio

import pytest

from podium.aio import cancel_and_wait


async def _slow_to_stop(stopped: list[str]) -> None:
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        await asyncio.sleep(0.2)  # cleanup that takes a while
        stopped.append("child")
        raise


async def test_the_tasks_are_cancelled_and_finished_on_return() -> None:
    stopped: list[str] = []
    children = [asyncio.create_task(_slow_to_stop(stopped)) for _ in range(3)]
    await asyncio.sleep(0)
    await cancel_and_wait(*children)
    assert stopped == ["child"] * 3
    assert all(child.cancelled() for child in children)


async def test_a_caller_cancelled_while_it_waits_stays_cancelled() -> None:
    stopped: list[str] = []
    child = asyncio.create_task(_slow_to_stop(stopped))
    carried_on: list[bool] = []

    async def caller() -> None:
        await cancel_and_wait(child)
        carried_on.append(True)

    waiting = asyncio.create_task(caller())
    await asyncio.sleep(0.05)  # the child is in its cleanup, the caller waits for it
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert carried_on == []
    await asyncio.wait({child})
    assert stopped == ["child"]


async def test_an_error_on_the_way_out_is_dropped() -> None:
    async def fails_on_cancel() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            raise ValueError("cleanup failed") from None

    child = asyncio.create_task(fails_on_cancel())
    await asyncio.sleep(0)
    await cancel_and_wait(child)
    assert isinstance(child.exception(), ValueError)
    await cancel_and_wait()  # nothing to stop
