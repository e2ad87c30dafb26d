"""The shipped fakes: FunctionModel (sync and async), the function-model registry and FakeClock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from podium.clock import Clock
from podium.errors import ModelError, UsageError
from podium.llm.base import Message, ModelRequest, ModelResponse, ToolCall, Usage
from podium.testing import (
    FakeClock,
    FunctionModel,
    MemoryEventStore,
    ScriptedModel,
    function_model,
    register_function_model,
    unregister_function_model,
)


def ask(text: str = "hello", agent: str = "writer") -> ModelRequest:
    return ModelRequest(messages=(Message(role="user", content=text),), agent=agent)


async def test_sync_function_returning_text_records_the_calls() -> None:
    def shout(request: ModelRequest) -> str:
        return request.messages[-1].content.upper()

    model = FunctionModel(shout)
    assert model.name == "function:shout"
    response = await model.complete(ask("hello"))
    assert response.text == "HELLO"
    assert response.finish_reason == "stop"
    assert response.model == "function:shout"
    assert response.usage == Usage(input_tokens=2, output_tokens=2)
    await model.complete(ask("again", agent="critic"))
    assert [call.agent for call in model.calls] == ["writer", "critic"]
    assert model.calls[0] == ask("hello")


async def test_async_function_returning_json() -> None:
    async def plan(request: ModelRequest) -> dict[str, object]:
        return {"steps": ["a"], "agent": request.agent}

    response = await FunctionModel(plan, name="function:planner").complete(ask())
    assert json.loads(response.text) == {"steps": ["a"], "agent": "writer"}


async def test_tool_calls_and_whole_responses_pass_through() -> None:
    calls = [ToolCall(id="c1", name="read_file", arguments={"path": "a.md"})]
    response = await FunctionModel(lambda _: calls).complete(ask())
    assert response.message.tool_calls == tuple(calls)
    assert response.finish_reason == "tool_calls"
    whole = ModelResponse(message=Message(role="assistant", content="x"), model="m")
    assert await FunctionModel(lambda _: whole).complete(ask()) is whole


async def test_streaming_sends_the_content_in_pieces() -> None:
    deltas: list[str] = []
    response = await FunctionModel(lambda _: "one two three").complete(
        ask(), on_delta=deltas.append
    )
    assert deltas == ["one ", "two ", "three"]
    assert "".join(deltas) == response.text


async def test_errors_from_the_function_propagate() -> None:
    def flaky(_: ModelRequest) -> str:
        raise ModelError("rate limited", retryable=True, provider="function", status=429)

    with pytest.raises(ModelError, match="rate limited"):
        await FunctionModel(flaky).complete(ask())


async def test_a_wrong_return_type_says_what_to_return() -> None:
    model = FunctionModel(lambda _: 42, name="function:bad")  # type: ignore[arg-type,return-value]
    with pytest.raises(UsageError, match=r"function:bad: .* returned int; return a ModelResponse"):
        await model.complete(ask())


def test_registry_accepts_names_with_or_without_the_prefix() -> None:
    model = FunctionModel(lambda _: "ok")
    register_function_model("function:greeter", model)
    try:
        assert function_model("greeter") is model
        assert function_model("function:greeter") is model
    finally:
        unregister_function_model("greeter")
    with pytest.raises(UsageError, match="no function model named 'greeter'"):
        function_model("greeter")
    with pytest.raises(UsageError, match="needs a name"):
        register_function_model("function:", model)


def test_fake_clock_moves_only_when_advanced() -> None:
    clock: Clock = FakeClock()
    assert isinstance(clock, FakeClock)
    start, mono = clock.now(), clock.monotonic()
    assert start.tzinfo is not None
    assert (clock.now(), clock.monotonic()) == (start, mono)
    clock.advance(90)
    assert clock.now() - start == timedelta(seconds=90)
    assert clock.monotonic() - mono == 90


def test_fake_clock_start_and_refusals() -> None:
    start = datetime(2030, 5, 1, 12, tzinfo=UTC)
    assert FakeClock(start).now() == start
    with pytest.raises(UsageError, match="aware start time"):
        FakeClock(datetime(2030, 5, 1))
    with pytest.raises(UsageError, match="only moves forward"):
        FakeClock().advance(-1)


def test_the_other_fakes_are_re_exported() -> None:
    assert MemoryEventStore.__module__ == "podium.store.memory"
    assert ScriptedModel.__module__ == "podium.llm.scripted"
