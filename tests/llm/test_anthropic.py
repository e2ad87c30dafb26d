"""The Anthropic adapter against a real local server speaking the Messages wire protocol,
driven through the official SDK (nothing mocked)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
from tests.llm.anthropic_server import AnthropicServer, Scripted, text, tool_use

from podium.errors import ModelError
from podium.llm.anthropic import AnthropicModel
from podium.llm.base import Message, ModelOptions, ModelRequest, ToolCall, ToolSpec, Usage

KEY = "sk-ant-test"
SEARCH = ToolSpec(
    "search",
    "Search the web.",
    {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
)
SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "tags": {"type": "array"}},
    "required": ["title"],
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_PROFILE",
        "ANTHROPIC_CUSTOM_HEADERS",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[AnthropicServer]:
    server = AnthropicServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def model(server: AnthropicServer) -> AsyncIterator[AnthropicModel]:
    model = AnthropicModel("claude-test", base_url=server.url, api_key=KEY)
    yield model
    await model.aclose()


def _sent_key(headers: dict[str, str]) -> str | None:
    """SDK 2.x sends the key as `Authorization: Bearer …`; older ones sent `x-api-key`."""
    return headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")


def ask(*messages: Message, **fields: object) -> ModelRequest:
    return ModelRequest(messages=messages or (Message("user", "hi"),), **fields)  # type: ignore[arg-type]


async def test_text_reply_usage_and_headers(model: AnthropicModel, server: AnthropicServer) -> None:
    server.script(Scripted(blocks=(text("Hello there"),), input_tokens=12, output_tokens=3))
    response = await model.complete(ask())
    assert response.text == "Hello there"
    assert response.message.tool_calls == ()
    assert response.usage == Usage(12, 3)
    assert response.finish_reason == "end_turn"
    assert response.model == model.name == "anthropic:claude-test"
    [call] = server.received
    assert call.path == "/v1/messages"
    assert call.headers["anthropic-version"]
    assert _sent_key(call.headers) == KEY
    assert call.body["model"] == "claude-test"
    assert call.body["max_tokens"] == 4096
    assert call.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert not call.body.get("stream")
    assert "tools" not in call.body
    assert "temperature" not in call.body


async def test_system_messages_go_to_the_system_parameter(
    model: AnthropicModel, server: AnthropicServer
) -> None:
    messages = (
        Message("system", "You are terse."),
        Message("user", "hi"),
        Message("system", "Answer in French."),
    )
    await model.complete(ask(*messages, options=ModelOptions(temperature=0.2, max_tokens=100)))
    body = server.received[0].body
    assert body["system"] == "You are terse.\n\nAnswer in French."
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 100


async def test_tool_use_reply(model: AnthropicModel, server: AnthropicServer) -> None:
    blocks = (text("Let me look."), tool_use("toolu_1", "search", {"q": "podium"}))
    server.script(Scripted(blocks=blocks, stop_reason="tool_use"))
    response = await model.complete(ask(tools=(SEARCH,)))
    assert response.text == "Let me look."
    assert response.message.tool_calls == (ToolCall("toolu_1", "search", {"q": "podium"}),)
    assert response.finish_reason == "tool_use"
    body = server.received[0].body
    assert body["tools"] == [
        {"name": "search", "description": "Search the web.", "input_schema": SEARCH.parameters}
    ]
    assert "tool_choice" not in body


async def test_streamed_text_deltas_concatenate(
    model: AnthropicModel, server: AnthropicServer
) -> None:
    words = "The quick brown fox jumps over the lazy dog."
    server.script(Scripted(blocks=(text(words),), input_tokens=7, output_tokens=11))
    deltas: list[str] = []
    response = await model.complete(ask(), on_delta=deltas.append)
    assert len(deltas) > 5
    assert "".join(deltas) == response.text == words
    assert response.usage == Usage(7, 11)
    assert response.finish_reason == "end_turn"
    assert server.received[0].body["stream"] is True


async def test_streamed_tool_input_fragments_are_joined(
    model: AnthropicModel, server: AnthropicServer
) -> None:
    arguments = {"q": "durable workflows", "filters": {"year": 2024, "langs": ["en", "fr"]}}
    blocks = (
        text("Searching."),
        tool_use("toolu_1", "search", arguments),
        tool_use("toolu_2", "search", {}),
    )
    server.script(Scripted(blocks=blocks, stop_reason="tool_use"))
    deltas: list[str] = []
    response = await model.complete(ask(tools=(SEARCH,)), on_delta=deltas.append)
    assert "".join(deltas) == response.text == "Searching."
    assert response.message.tool_calls == (
        ToolCall("toolu_1", "search", arguments),
        ToolCall("toolu_2", "search", {}),
    )
    assert response.finish_reason == "tool_use"


async def test_garbled_streamed_tool_input_is_a_retryable_error(
    model: AnthropicModel, server: AnthropicServer
) -> None:
    garbled = {**tool_use("toolu_1", "search", {}), "raw_json": '{"q": "unterminated'}
    server.script(Scripted(blocks=(garbled,), stop_reason="tool_use"))
    with pytest.raises(ModelError) as caught:
        await model.complete(ask(tools=(SEARCH,)), on_delta=lambda _: None)
    assert caught.value.retryable
    assert caught.value.error_type == "response"
    assert "tool search input is not JSON" in str(caught.value)


async def test_tool_calls_and_results_map_to_content_blocks(
    model: AnthropicModel, server: AnthropicServer
) -> None:
    calls = (ToolCall("toolu_1", "search", {"q": "a"}), ToolCall("toolu_2", "search", {"q": "b"}))
    conversation = (
        Message("user", "find a and b"),
        Message("assistant", "Looking.", tool_calls=calls),
        Message("tool", "result a", tool_call_id="toolu_1", name="search"),
        Message("tool", "result b", tool_call_id="toolu_2", name="search"),
        Message("assistant", "", tool_calls=(ToolCall("toolu_3", "search", {"q": "c"}),)),
        Message("tool", "result c", tool_call_id="toolu_3", name="search"),
        Message("user", "and summarise"),
    )
    await model.complete(ask(*conversation, tools=(SEARCH,)))
    assert server.received[0].body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "find a and b"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Looking."},
                {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {"q": "a"}},
                {"type": "tool_use", "id": "toolu_2", "name": "search", "input": {"q": "b"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "result a"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "result b"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_3", "name": "search", "input": {"q": "c"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_3", "content": "result c"},
                {"type": "text", "text": "and summarise"},
            ],
        },
    ]


async def test_tool_images_go_inside_the_tool_result(
    model: AnthropicModel, server: AnthropicServer
) -> None:
    from podium.llm.base import Image

    assert model.accepts_images
    calls = (ToolCall("toolu_1", "picture", {}),)
    conversation = (
        Message("user", "what is drawn?"),
        Message("assistant", "", tool_calls=calls),
        Message("tool", "[an image]", tool_call_id="toolu_1", images=(Image("aGk=", "image/png"),)),
    )
    await model.complete(ask(*conversation, tools=(SEARCH,)))
    result = server.received[0].body["messages"][-1]["content"][0]
    assert result["type"] == "tool_result"
    assert result["content"] == [
        {"type": "text", "text": "[an image]"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "aGk="}},
    ]


@pytest.mark.parametrize("stream", [False, True])
async def test_structured_output_uses_a_forced_respond_tool(
    model: AnthropicModel, server: AnthropicServer, stream: bool
) -> None:
    answer = {"title": "Podium", "tags": ["durable", "agents"]}
    server.script(
        Scripted(blocks=(tool_use("toolu_9", "respond", answer),), stop_reason="tool_use")
    )
    deltas: list[str] = []
    on_delta = deltas.append if stream else None
    response = await model.complete(ask(output_schema=SCHEMA), on_delta=on_delta)
    assert json.loads(response.text) == answer
    assert response.message.tool_calls == ()
    assert response.finish_reason == "end_turn"
    body = server.received[0].body
    assert body["tool_choice"] == {"type": "tool", "name": "respond"}
    [respond] = body["tools"]
    assert respond["name"] == "respond"
    assert respond["input_schema"] == SCHEMA


async def test_structured_output_with_tools_lets_the_model_call_them(
    model: AnthropicModel, server: AnthropicServer
) -> None:
    call = tool_use("toolu_1", "search", {"q": "x"})
    server.script(Scripted(blocks=(call,), stop_reason="tool_use"))
    response = await model.complete(ask(tools=(SEARCH,), output_schema=SCHEMA))
    assert response.message.tool_calls == (ToolCall("toolu_1", "search", {"q": "x"}),)
    body = server.received[0].body
    assert body["tool_choice"] == {"type": "any"}
    assert [t["name"] for t in body["tools"]] == ["search", "respond"]


ERRORS = [
    (400, "invalid_request_error", False, "bad_request", "fix the request"),
    (401, "authentication_error", False, "auth", "ANTHROPIC_API_KEY"),
    (403, "permission_error", False, "auth", "ANTHROPIC_API_KEY"),
    (404, "not_found_error", False, "not_found", "'claude-test'"),
    (429, "rate_limit_error", True, "rate_limit", "retryable"),
    (500, "api_error", True, "server", "retryable"),
    (529, "overloaded_error", True, "overloaded", "retryable"),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("status", "kind", "retryable", "error_type", "advice"), ERRORS)
async def test_error_statuses_are_classified(
    model: AnthropicModel,
    server: AnthropicServer,
    stream: bool,
    status: int,
    kind: str,
    retryable: bool,
    error_type: str,
    advice: str,
) -> None:
    server.script(Scripted(status=status, error_type=kind, error_message="Something broke"))
    request = ask(agent="writer", step_id="plan.s2")
    with pytest.raises(ModelError) as caught:
        await model.complete(request, on_delta=(lambda _: None) if stream else None)
    err = caught.value
    label = kind.removesuffix("_error")
    prefix = f"anthropic:claude-test (agent writer, step plan.s2): HTTP {status} {label}: "
    assert str(err).startswith(prefix + "Something broke")
    assert advice in str(err)
    assert (err.retryable, err.error_type, err.status, err.provider) == (
        retryable,
        error_type,
        status,
        "anthropic",
    )
    assert len(server.received) == 1  # the SDK did not retry


async def test_an_error_event_mid_stream_is_classified(
    model: AnthropicModel, server: AnthropicServer
) -> None:
    reply = Scripted(blocks=(text("partial"),), stream_error=("overloaded_error", "Overloaded"))
    server.script(reply)
    deltas: list[str] = []
    with pytest.raises(ModelError) as caught:
        await model.complete(ask(step_id="s1"), on_delta=deltas.append)
    assert caught.value.retryable
    assert caught.value.error_type == "overloaded"
    assert "anthropic:claude-test (step s1): HTTP 200 overloaded: Overloaded" in str(caught.value)
    assert "".join(deltas) == "partial"


async def test_connection_refused_is_retryable_and_names_the_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    model = AnthropicModel("claude-test", base_url=url, api_key=KEY)
    with pytest.raises(ModelError) as caught:
        await model.complete(ask(agent="writer"))
    await model.aclose()
    assert caught.value.retryable
    assert caught.value.error_type == "connection"
    assert str(caught.value).startswith("anthropic:claude-test (agent writer): cannot connect")
    assert url in str(caught.value)


@pytest.mark.parametrize("where", ["model", "request"])
async def test_timeout_is_retryable(server: AnthropicServer, where: str) -> None:
    server.script(Scripted(blocks=(text("late"),), delay_seconds=30))
    per_model = 0.3 if where == "model" else None
    model = AnthropicModel(
        "claude-test", base_url=server.url, api_key=KEY, timeout_seconds=per_model
    )
    request = ask(options=ModelOptions(timeout_seconds=0.3)) if where == "request" else ask()
    with pytest.raises(ModelError) as caught:
        await asyncio.wait_for(model.complete(request), timeout=10)
    await model.aclose()
    assert caught.value.retryable
    assert caught.value.error_type == "timeout"
    assert "timed out" in str(caught.value)
    assert len(server.received) == 1


async def test_a_missing_key_is_a_config_error(server: AnthropicServer) -> None:
    model = AnthropicModel("claude-test", base_url=server.url)
    with pytest.raises(ModelError) as caught:
        await model.complete(ask(agent="writer"))
    assert not caught.value.retryable
    assert caught.value.error_type == "config"
    assert "set ANTHROPIC_API_KEY" in str(caught.value)
    assert server.received == []


async def test_key_and_base_url_come_from_the_environment(
    server: AnthropicServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-from-env")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    model = AnthropicModel("claude-test")
    response = await model.complete(ask())
    await model.aclose()
    assert response.text == "ok"
    headers = server.received[0].headers
    assert _sent_key(headers) == "sk-from-env"


def test_each_event_loop_gets_its_own_client(server: AnthropicServer) -> None:
    model = AnthropicModel("claude-test", base_url=server.url, api_key=KEY)

    async def call() -> str:
        response = await model.complete(ask())
        return response.text

    async def call_and_close() -> str:
        try:
            return await call()
        finally:
            await model.aclose()

    assert asyncio.run(call()) == "ok"
    assert asyncio.run(call_and_close()) == "ok"
    assert len(server.received) == 2


# --- model options, token limits, schemas --------------------------------------------------------


async def test_the_options_anthropic_takes_are_sent_and_the_rest_ignored(
    model: AnthropicModel, server: AnthropicServer
) -> None:
    options = ModelOptions(
        temperature=0.3,
        top_p=0.8,
        stop=("END", "STOP"),
        max_tokens=77,
        tool_choice="search",
        seed=5,
        reasoning_effort="high",
        parallel_tool_calls=False,
    )
    await model.complete(ask(tools=(SEARCH,), options=options))
    body = server.received[0].body
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.3, 0.8, 77)
    assert body["stop_sequences"] == ["END", "STOP"]
    assert body["tool_choice"] == {"type": "tool", "name": "search"}
    for ignored in ("seed", "reasoning_effort", "parallel_tool_calls"):
        assert ignored not in body


@pytest.mark.parametrize(
    ("choice", "sent"),
    [("auto", {"type": "auto"}), ("none", {"type": "none"}), ("required", {"type": "any"})],
)
async def test_tool_choice_words_map_to_anthropic_types(
    model: AnthropicModel, server: AnthropicServer, choice: str, sent: dict[str, str]
) -> None:
    await model.complete(ask(tools=(SEARCH,), options=ModelOptions(tool_choice=choice)))
    assert server.received[0].body["tool_choice"] == sent


async def test_stream_false_makes_one_whole_request(
    model: AnthropicModel, server: AnthropicServer
) -> None:
    server.script(Scripted(blocks=(text("whole"),)))
    deltas: list[str] = []
    response = await model.complete(ask(options=ModelOptions(stream=False)), on_delta=deltas.append)
    assert response.text == "whole"
    assert deltas == ["whole"]
    assert not server.received[0].body.get("stream")


@pytest.mark.parametrize("stream", [False, True])
async def test_a_reply_stopped_by_max_tokens_is_not_an_answer(
    model: AnthropicModel, server: AnthropicServer, stream: bool
) -> None:
    server.script(Scripted(blocks=(text("The answer is"),), stop_reason="max_tokens"))
    with pytest.raises(ModelError) as caught:
        await model.complete(ask(), on_delta=(lambda _: None) if stream else None)
    assert not caught.value.retryable
    assert caught.value.error_type == "length"
    assert "raise max_tokens" in str(caught.value)


async def test_an_array_schema_is_wrapped_and_the_answer_unwrapped(
    model: AnthropicModel, server: AnthropicServer
) -> None:
    schema = {"type": "array", "items": {"type": "string"}}
    answer = tool_use("toolu_1", "respond", {"value": ["a", "b"]})
    server.script(Scripted(blocks=(answer,), stop_reason="tool_use"))
    response = await model.complete(ask(output_schema=schema))
    assert json.loads(response.text) == ["a", "b"]
    assert response.structured_mode == "tool"
    [respond] = server.received[0].body["tools"]
    assert respond["input_schema"]["properties"] == {"value": schema}


async def test_an_empty_schema_is_sent_as_an_object(
    model: AnthropicModel, server: AnthropicServer
) -> None:
    answer = tool_use("toolu_1", "respond", {"free": 1})
    server.script(Scripted(blocks=(answer,), stop_reason="tool_use"))
    response = await model.complete(ask(output_schema={}))
    assert json.loads(response.text) == {"free": 1}
    assert server.received[0].body["tools"][0]["input_schema"] == {"type": "object"}
