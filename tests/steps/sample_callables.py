"""Callables the python-executor tests reach by registered name and by import path."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from podium.errors import StepExecutionError
from podium.steps.python import PodiumContext, register

NOT_CALLABLE = 42


@register("tests.add")
def add(a: int, b: int = 0) -> dict[str, int]:
    return {"sum": a + b}


@register
async def echo_async_sample(value: Any) -> Any:
    await asyncio.sleep(0)  # a real await point inside the call, not a wait for anything
    return value


def thread_name() -> str:
    return threading.current_thread().name


def with_key(order: str, idempotency_key: str) -> dict[str, str]:
    return {"order": order, "key": idempotency_key}


async def with_kwargs(**kwargs: Any) -> dict[str, Any]:
    return kwargs


def with_context(podium_context: PodiumContext) -> dict[str, Any]:
    return {"run": podium_context.run_id, "attempt": podium_context.attempt}


def returns_set() -> set[int]:
    return {1, 2}


def fails() -> None:
    raise ValueError("boom")


def fails_permanently() -> None:
    raise StepExecutionError("card declined", retryable=False, error_type="declined")


def positional_only(a: int, /) -> int:
    return a


STARTED: dict[str, asyncio.Event] = {}
"""Events a test puts here under a name; `sleeps(..., started=name)` sets its one on entry."""


async def sleeps(seconds: float, started: str = "") -> str:
    if started:
        STARTED[started].set()
    await asyncio.sleep(seconds)  # the behaviour under test: a call that runs until cancelled
    return "done"


class Namespace:
    @staticmethod
    def nested(x: int) -> int:
        return x * 2


class AsyncCallable:
    async def __call__(self, x: int) -> int:
        return x + 1


async_callable = AsyncCallable()
