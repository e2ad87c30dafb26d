"""The openai adapter: the official SDK, through OpenAIModel, against a real local server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from podium.errors import ModelError
from podium.llm.base import Message, ModelOptions, ModelRequest, ToolCall, ToolSpec, Usage
from podium.llm.openai import PLACEHOLDER_API_KEY, OpenAIModel

from .openai_server import (
    MODEL,
    OpenAIServer,
    Reply,
    chunk,
    completion,
    error,
    serve,
    text_stream,
    tool_call,
    usage_chunk,
)

ModelFactory = Callable[..., OpenAIModel]

HELLO = (Message(role="system", content="Be brief."), Message(role="user", content="Hi"))
SEARCH = ToolSpec(
    name="search",
    description="Search the web",
    parameters={"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("API_KEY", "BASE_URL", "ORG_ID", "PROJECT_ID", "ADMIN_KEY", "CUSTOM_HEADERS"):
        monkeypatch.delenv(f"OPENAI_{name}", raising=False)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    yield from serve()


@pytest.fixture
async def make_model(server: OpenAIServer) -> AsyncIterator[ModelFactory]:
    made: list[OpenAIModel] = []

    def make(**options: Any) -> OpenAIModel:
        options = {"base_url": server.url, "api_key": "sk-test"} | options
        made.append(OpenAIModel(MODEL, **options))
        return made[-1]

    yield make
    for model in made:
        await model.aclose()


def ask(*messages: Message, **fields: Any) -> ModelRequest:
    return ModelRequest(messages=messages or HELLO, **fields)


# -- plain text, request shape ------------------------------------------------------------------


async def test_plain_text_reply_and_what_was_sent(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    server.script(completion("Hello there.", usage=(12, 3)))
    model = make_model()

    response = await model.complete(ask())

    assert model.name == f"openai:{MODEL}"
    assert response.text == "Hello there."
    assert response.message.role == "assistant"
    assert response.message.tool_calls == ()
    assert response.usage == Usage(input_tokens=12, output_tokens=3)
    assert response.model == MODEL
    assert response.finish_reason == "stop"
    sent = server.last
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.body["model"] == MODEL
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    for absent in ("tools", "response_format", "temperature", "max_tokens", "stream"):
        assert absent not in sent.body


async def test_temperature_and_max_tokens_are_sent_when_set(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    server.script(completion("ok"))
    await make_model().complete(ask(options=ModelOptions(temperature=0.2, max_tokens=64)))
    assert server.last.body["temperature"] == 0.2
    assert server.last.body["max_tokens"] == 64


async def test_tool_conversation_is_mapped_to_function_calls(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    server.script(completion("Paris is sunny."))
    history = (
        Message(role="user", content="Weather in Paris?"),
        Message(
            role="assistant",
            tool_calls=(ToolCall(id="call_1", name="search", arguments={"q": "paris weather"}),),
        ),
        Message(role="tool", content="sunny, 24C", tool_call_id="call_1"),
    )

    await make_model().complete(ask(*history, tools=(SEARCH,)))

    sent = server.last.body
    assert sent["messages"][1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "search", "arguments": '{"q": "paris weather"}'},
            }
        ],
    }
    assert sent["messages"][2] == {
        "role": "tool",
        "content": "sunny, 24C",
        "tool_call_id": "call_1",
    }
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "search",
                "description": "Search the web",
                "parameters": dict(SEARCH.parameters),
            },
        }
    ]


async def test_output_schema_asks_for_json_schema(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    server.script(completion('{"answer": "42"}'))

    response = await make_model().complete(ask(output_schema=schema))

    assert response.text == '{"answer": "42"}'
    assert response.structured_mode == "json_schema"
    assert server.last.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": False},
    }


# -- tool calls ---------------------------------------------------------------------------------


async def test_tool_calls_are_parsed_and_bad_arguments_kept_raw(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    calls = [
        tool_call("call_1", "search", '{"q": "podium"}'),
        tool_call("call_2", "search", '{"q": unquoted}'),
        tool_call("call_3", "now", ""),
    ]
    server.script(completion(None, tool_calls=calls, finish_reason="tool_calls"))

    response = await make_model().complete(ask(tools=(SEARCH,)))

    assert response.text == ""
    assert response.finish_reason == "tool_calls"
    assert response.message.tool_calls == (
        ToolCall(id="call_1", name="search", arguments={"q": "podium"}),
        ToolCall(id="call_2", name="search", arguments={"_raw": '{"q": unquoted}'}),
        ToolCall(id="call_3", name="now", arguments={}),
    )


async def test_streamed_tool_calls_are_assembled_from_fragments(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    def part(index: int, **fields: Any) -> dict[str, Any]:
        return chunk({"tool_calls": [{"index": index, **fields}]})

    events = (
        chunk({"role": "assistant", "content": None}),
        part(0, id="call_a", type="function", function={"name": "search", "arguments": ""}),
        part(0, function={"arguments": '{"q": '}),
        part(1, id="call_b", type="function", function={"name": "fetch", "arguments": '{"url"'}),
        part(0, function={"arguments": '"podium"}'}),
        part(1, function={"arguments": ': "https://x.test"}'}),
        chunk({}, finish_reason="tool_calls"),
        usage_chunk(20, 9),
    )
    server.script(Reply(events=events))
    deltas: list[str] = []

    response = await make_model().complete(ask(tools=(SEARCH,)), on_delta=deltas.append)

    assert deltas == []
    assert response.finish_reason == "tool_calls"
    assert response.usage == Usage(input_tokens=20, output_tokens=9)
    assert response.message.tool_calls == (
        ToolCall(id="call_a", name="search", arguments={"q": "podium"}),
        ToolCall(id="call_b", name="fetch", arguments={"url": "https://x.test"}),
    )


# -- streaming ----------------------------------------------------------------------------------


async def test_streamed_deltas_concatenate_to_the_content(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    pieces = ["Once", " upon", " a", " time", "."]
    server.script(text_stream(pieces, usage=(8, 5)))
    deltas: list[str] = []

    response = await make_model().complete(ask(), on_delta=deltas.append)

    assert deltas == pieces
    assert response.text == "".join(pieces)
    assert response.usage == Usage(input_tokens=8, output_tokens=5)
    assert response.finish_reason == "stop"
    assert response.model == MODEL
    assert server.last.body["stream"] is True
    assert server.last.body["stream_options"] == {"include_usage": True}


async def test_stream_without_usage_gets_estimated_usage(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    server.script(text_stream(["abcd", "efgh"], usage=None))
    response = await make_model().complete(ask(), on_delta=lambda _: None)
    assert response.text == "abcdefgh"
    assert response.usage == Usage(input_tokens=3, output_tokens=2)  # "Be brief." + "Hi": 11 chars
    assert response.usage.estimated


async def test_an_error_event_mid_stream_is_retryable(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    events = (chunk({"content": "par"}), {"error": {"message": "overloaded", "type": "server"}})
    server.script(Reply(events=events))

    with pytest.raises(ModelError) as caught:
        await make_model().complete(ask(), on_delta=lambda _: None)

    assert caught.value.retryable
    assert "overloaded" in str(caught.value)


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable", "error_type", "words"),
    [
        (400, False, "bad_request", "HTTP 400"),
        (401, False, "auth", "OPENAI_API_KEY"),
        (403, False, "auth", "OPENAI_API_KEY"),
        (404, False, "not_found", "model name"),
        (422, False, "bad_request", "HTTP 422"),
        (429, True, "rate_limit", "HTTP 429 rate limited"),
        (500, True, "server", "HTTP 500"),
        (503, True, "server", "HTTP 503"),
    ],
)
async def test_http_errors_are_classified(
    server: OpenAIServer,
    make_model: ModelFactory,
    status: int,
    retryable: bool,
    error_type: str,
    words: str,
) -> None:
    server.script(error(status, "the server says no"))

    with pytest.raises(ModelError) as caught:
        await make_model().complete(ask(agent="researcher", step_id="plan.s1"))

    err = caught.value
    assert (err.retryable, err.status, err.error_type, err.provider) == (
        retryable,
        status,
        error_type,
        "openai",
    )
    message = str(err)
    assert message.startswith(f"openai:{MODEL} (agent researcher, step plan.s1): HTTP {status}")
    assert "the server says no" in message
    assert words in message
    assert len(server.requests) == 1, "the SDK must not retry"


async def test_streaming_errors_are_classified_too(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    server.script(error(429, "slow down", "rate_limit_error"))
    with pytest.raises(ModelError) as caught:
        await make_model().complete(ask(), on_delta=lambda _: None)
    assert caught.value.retryable
    assert str(caught.value) == f"openai:{MODEL}: HTTP 429 rate limited: slow down"


async def test_connection_refused_is_retryable_and_names_the_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    model = OpenAIModel(MODEL, base_url=url)

    with pytest.raises(ModelError) as caught:
        await model.complete(ask(step_id="s1"))
    await model.aclose()

    assert caught.value.retryable
    assert caught.value.error_type == "connection"
    assert url in str(caught.value)
    assert "check the server is running" in str(caught.value)


@pytest.mark.parametrize("where", ["request", "model"])
async def test_a_hanging_server_times_out_as_retryable(
    server: OpenAIServer, make_model: ModelFactory, where: str
) -> None:
    server.script(Reply(hang=True))
    model = make_model(timeout_seconds=0.3 if where == "model" else 60)
    request = ask(options=ModelOptions(timeout_seconds=0.3 if where == "request" else None))

    with pytest.raises(ModelError) as caught:
        await asyncio.wait_for(model.complete(request), 10)

    assert caught.value.retryable
    assert caught.value.error_type == "timeout"
    assert "timed out after 0.3s" in str(caught.value)


async def test_a_reply_without_choices_is_a_retryable_error(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    body = completion("x").json | {"choices": []}
    server.script(Reply(json=body))
    with pytest.raises(ModelError) as caught:
        await make_model().complete(ask())
    assert caught.value.retryable
    assert caught.value.error_type == "empty_response"


# -- configuration ------------------------------------------------------------------------------


async def test_no_key_and_no_base_url_is_a_config_error() -> None:
    model = OpenAIModel(MODEL)
    with pytest.raises(ModelError) as caught:
        await model.complete(ask(agent="writer"))
    err = caught.value
    assert (err.retryable, err.error_type) == (False, "config")
    assert str(err).startswith(f"openai:{MODEL} (agent writer): ")
    assert "OPENAI_API_KEY" in str(err)
    assert "OPENAI_BASE_URL" in str(err)
    assert "Ollama" in str(err)


async def test_a_local_server_without_key_gets_a_placeholder_key(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    server.script(completion("hi"))
    await make_model(api_key=None).complete(ask())
    assert server.last.headers["authorization"] == f"Bearer {PLACEHOLDER_API_KEY}"


async def test_environment_gives_base_url_and_key(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    server.script(completion("from env"))
    model = OpenAIModel(MODEL)

    response = await model.complete(ask())
    await model.aclose()

    assert response.text == "from env"
    assert server.last.headers["authorization"] == "Bearer sk-from-env"


def test_one_model_serves_several_event_loops(server: OpenAIServer) -> None:
    server.script(completion("first"), completion("second"))
    model = OpenAIModel(MODEL, base_url=server.url, api_key="sk-test")

    async def call(close: bool) -> str:
        text = (await model.complete(ask())).text
        if close:
            await model.aclose()
        return text

    assert asyncio.run(call(close=False)) == "first"
    assert asyncio.run(call(close=True)) == "second"
