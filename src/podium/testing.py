"""The fakes Podium ships for tests and demos: a function-backed model, the scripted model, the
in-memory event store and a clock that moves only when told to.

`register_function_model("name", FunctionModel(fn))` makes `"function:name"` resolve to it (the
registry itself lives in `podium.llm`, next to `resolve_model`; it is re-exported here).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

from podium.errors import UsageError
from podium.llm import function_model, register_function_model, unregister_function_model
from podium.llm.base import (
    DeltaSink,
    Message,
    ModelRequest,
    ModelResponse,
    ToolCall,
    estimate_usage,
)
from podium.llm.scripted import ScriptedModel, word_chunks
from podium.store.memory import MemoryEventStore

__all__ = [
    "FakeClock",
    "FunctionModel",
    "MemoryEventStore",
    "ModelFunction",
    "ScriptedModel",
    "function_model",
    "register_function_model",
    "unregister_function_model",
]

Reply: TypeAlias = ModelResponse | str | dict[str, Any] | list[ToolCall]
ModelFunction: TypeAlias = Callable[[ModelRequest], Reply | Awaitable[Reply]]
FUNCTION_PREFIX = "function:"


class FunctionModel:
    """A model whose replies come from `fn(request)`, sync or async. `fn` returns a
    `ModelResponse`, a str (the content), a dict (sent as JSON content) or a list of `ToolCall`.
    Every request is kept in `calls`; raise `ModelError` from `fn` to simulate a failure."""

    def __init__(self, fn: ModelFunction, *, name: str | None = None) -> None:
        self.fn = fn
        self.name = name or f"{FUNCTION_PREFIX}{getattr(fn, '__name__', 'model')}"
        self.calls: list[ModelRequest] = []

    async def complete(
        self, request: ModelRequest, *, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        self.calls.append(request)
        reply = self.fn(request)
        if inspect.isawaitable(reply):
            reply = await reply
        response = self._response(request, reply)
        if on_delta is not None:
            for chunk in word_chunks(response.text):
                on_delta(chunk)
        return response

    def _response(self, request: ModelRequest, reply: object) -> ModelResponse:
        if isinstance(reply, ModelResponse):
            return reply
        message = _message(reply, self.name)
        return ModelResponse(
            message=message,
            usage=estimate_usage(request, message),
            model=self.name,
            finish_reason="tool_calls" if message.tool_calls else "stop",
        )


def _message(reply: object, name: str) -> Message:
    if isinstance(reply, str):
        return Message(role="assistant", content=reply)
    if isinstance(reply, dict):
        return Message(role="assistant", content=json.dumps(reply, ensure_ascii=False))
    if isinstance(reply, list) and all(isinstance(call, ToolCall) for call in reply):
        return Message(role="assistant", tool_calls=tuple(reply))
    raise UsageError(
        f"{name}: the model function returned {type(reply).__name__}; return a ModelResponse, "
        "a str, a dict (JSON content) or a list of ToolCall"
    )


# -- time ----------------------------------------------------------------------------------------

_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


class FakeClock:
    """A `podium.clock.Clock` that stands still until `advance(seconds)` moves it."""

    def __init__(self, start: datetime = _EPOCH, *, monotonic_start: float = 0.0) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise UsageError(f"FakeClock needs an aware start time, got {start!r}; add tzinfo=UTC")
        self._now = start.astimezone(UTC)
        self._monotonic = monotonic_start

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        """Move both readings forward by `seconds` (≥ 0)."""
        if seconds < 0:
            raise UsageError(f"a clock only moves forward; advance({seconds}) is negative")
        self._now += timedelta(seconds=seconds)
        self._monotonic += seconds
