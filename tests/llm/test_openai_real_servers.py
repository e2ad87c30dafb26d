"""The openai adapter against servers that behave like llama.cpp, vLLM and LiteLLM do: options on
the wire, replies that are not answers, structured-output modes and their fallback, Azure."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from podium.errors import ModelError, UsageError
from podium.llm._openai_request import Shape, Target, request_params
from podium.llm._structured import strict_form, unwrap
from podium.llm.base import AzureSettings, Message, ModelOptions, ModelRequest, ToolCall, ToolSpec
from podium.llm.openai import OpenAIModel

from .openai_server import (
    MODEL,
    OpenAIServer,
    Reply,
    completion,
    cut_off_stream,
    empty_stream,
    error,
    length_stream,
    null_content_refused,
    replies,
    serve,
    text_stream,
    tool_call,
    without_response_format,
)

ModelFactory = Callable[..., OpenAIModel]
HELLO = (Message(role="user", content="Hi"),)
SEARCH = ToolSpec("search", "Search the web", {"type": "object", "properties": {}})
ANSWER = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_API_KEY", "OPENAI_API_VERSION"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    yield from serve()


@pytest.fixture
async def make_model(server: OpenAIServer) -> AsyncIterator[ModelFactory]:
    made: list[OpenAIModel] = []

    def make(model: str = MODEL, **options: Any) -> OpenAIModel:
        options = {"base_url": server.url, "api_key": "sk-test"} | options
        made.append(OpenAIModel(model, **options))
        return made[-1]

    yield make
    for model in made:
        await model.aclose()


def ask(*messages: Message, **fields: Any) -> ModelRequest:
    return ModelRequest(messages=messages or HELLO, **fields)


def stream_to(deltas: list[str]) -> Callable[[str], None]:
    return deltas.append


# -- options on the wire -----------------------------------------------------------------------


async def test_every_option_the_protocol_takes_is_sent(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    server.script(completion("ok"))
    options = ModelOptions(
        temperature=0.1,
        max_tokens=50,
        reasoning_effort="low",
        seed=7,
        top_p=0.9,
        stop=("END",),
        tool_choice="search",
        parallel_tool_calls=False,
    )
    await make_model().complete(ask(tools=(SEARCH,), options=options))
    body = server.last.body
    assert (body["temperature"], body["max_tokens"], body["seed"], body["top_p"]) == (
        0.1,
        50,
        7,
        0.9,
    )
    assert body["reasoning_effort"] == "low"
    assert body["stop"] == ["END"]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "search"}}
    assert body["parallel_tool_calls"] is False


async def test_tool_options_are_left_out_without_tools(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    server.script(completion("ok"))
    await make_model().complete(
        ask(options=ModelOptions(tool_choice="auto", parallel_tool_calls=True))
    )
    assert "tool_choice" not in server.last.body
    assert "parallel_tool_calls" not in server.last.body


@pytest.mark.parametrize("model", ["o3-mini", "o4-mini", "gpt-5-nano", "openai/gpt-5"])
async def test_reasoning_models_get_max_completion_tokens(
    server: OpenAIServer, make_model: ModelFactory, model: str
) -> None:
    server.script(completion("ok"))
    await make_model(model).complete(ask(options=ModelOptions(max_tokens=99)))
    assert server.last.body["max_completion_tokens"] == 99
    assert "max_tokens" not in server.last.body


async def test_provider_defaults_sit_under_the_request_and_headers_go_on_every_call(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    server.script(completion("one"), completion("two"))
    defaults = ModelOptions(temperature=0.7, seed=1, max_tokens=10)
    model = make_model(defaults=defaults, headers={"X-Team": "research"})
    await model.complete(ask())
    assert (server.last.body["temperature"], server.last.body["seed"]) == (0.7, 1)
    await model.complete(ask(options=ModelOptions(temperature=0.0)))
    assert (server.last.body["temperature"], server.last.body["seed"]) == (0.0, 1)
    assert all(r.headers["x-team"] == "research" for r in server.requests)


async def test_stream_false_asks_for_one_whole_reply(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    server.script(completion("whole answer"))
    deltas: list[str] = []
    response = await make_model().complete(
        ask(options=ModelOptions(stream=False)), on_delta=stream_to(deltas)
    )
    assert response.text == "whole answer"
    assert deltas == ["whole answer"]
    assert "stream" not in server.last.body


def test_options_merge_set_fields_over_the_defaults() -> None:
    mine = ModelOptions(temperature=0.2, stop=("x",))
    merged = mine.merged(ModelOptions(temperature=0.9, seed=3, stream=False))
    assert merged == ModelOptions(temperature=0.2, stop=("x",), seed=3, stream=False)


def test_an_unknown_structured_output_mode_is_refused() -> None:
    with pytest.raises(UsageError, match="json_object"):
        OpenAIModel(MODEL, structured_output="xml")


async def test_azure_uses_the_deployment_path_version_and_key(
    server: OpenAIServer,
) -> None:
    server.script(completion("from azure"))
    endpoint = server.url.removesuffix("/v1")
    azure = AzureSettings(endpoint=endpoint, api_version="2024-10-21", deployment="prod-4o")
    model = OpenAIModel("gpt-4o", api_key="az-key", azure=azure)
    response = await model.complete(ask(options=ModelOptions(max_tokens=20)))
    await model.aclose()
    assert response.text == "from azure"
    assert server.last.path == "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"
    assert server.last.headers["api-key"] == "az-key"
    assert server.last.body["max_completion_tokens"] == 20


# -- replies that are not answers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "retryable", "error_type", "words"),
    [
        (empty_stream(), True, "empty_response", "no answer"),
        (cut_off_stream(["The answer is"]), True, "truncated", "cut off"),
        (length_stream(["The answer", " is"]), False, "length", "raise max_tokens"),
        (text_stream([""]), True, "empty_response", "empty"),
    ],
)
async def test_streams_that_are_not_answers_are_errors(
    server: OpenAIServer,
    make_model: ModelFactory,
    reply: Any,
    retryable: bool,
    error_type: str,
    words: str,
) -> None:
    server.script(reply)
    with pytest.raises(ModelError) as caught:
        await make_model().complete(ask(agent="writer"), on_delta=lambda _: None)
    assert (caught.value.retryable, caught.value.error_type) == (retryable, error_type)
    assert words in str(caught.value)
    assert str(caught.value).startswith(f"openai:{MODEL} (agent writer): ")


@pytest.mark.parametrize(
    ("finish_reason", "retryable", "error_type"),
    [("length", False, "length"), (None, True, "truncated")],
)
async def test_whole_replies_that_are_not_answers_are_errors(
    server: OpenAIServer,
    make_model: ModelFactory,
    finish_reason: str | None,
    retryable: bool,
    error_type: str,
) -> None:
    body = completion("half an ans").json
    body["choices"][0]["finish_reason"] = finish_reason
    server.script(Reply(json=body))
    with pytest.raises(ModelError) as caught:
        await make_model().complete(ask())
    assert (caught.value.retryable, caught.value.error_type) == (retryable, error_type)


@pytest.mark.parametrize("usage", [None, (0, 0)])
async def test_a_server_that_omits_usage_gets_it_estimated(
    server: OpenAIServer, make_model: ModelFactory, usage: tuple[int, int] | None
) -> None:
    server.script(completion("x" * 40, usage=usage))
    response = await make_model().complete(ask(Message("user", "y" * 400)))
    assert (response.usage.input_tokens, response.usage.output_tokens) == (100, 10)
    assert response.usage.estimated


async def test_a_reported_usage_is_not_estimated(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    server.script(text_stream(["hi"], usage=(4, 1)))
    response = await make_model().complete(ask(), on_delta=lambda _: None)
    assert not response.usage.estimated
    assert server.last.body["stream_options"] == {"include_usage": True}


async def test_the_second_turn_of_a_tool_using_agent_passes_llama_cpp(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    first = completion(
        None, tool_calls=[tool_call("c1", "search", "{}")], finish_reason="tool_calls"
    )
    server.handler = null_content_refused(replies(first, completion("found it")))
    model = make_model()
    reply = await model.complete(ask(tools=(SEARCH,)))
    history = (*HELLO, reply.message, Message("tool", "results", tool_call_id="c1"))
    second = await model.complete(ask(*history, tools=(SEARCH,)))
    assert second.text == "found it"
    assert server.last.body["messages"][1]["content"] == ""


# -- structured output -------------------------------------------------------------------------


async def test_auto_falls_back_to_json_object_and_remembers_it(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    server.handler = without_response_format(
        replies(completion('{"answer": "a"}'), completion('{"answer": "b"}'))
    )
    model = make_model()
    first = await model.complete(ask(output_schema=ANSWER))
    assert first.text == '{"answer": "a"}'
    assert first.structured_mode == "json_object"
    assert [r.body["response_format"]["type"] for r in server.requests] == [
        "json_schema",
        "json_object",
    ]
    assert "matching this JSON Schema" in server.last.body["messages"][-1]["content"]
    second = await model.complete(ask(output_schema=ANSWER))
    assert second.structured_mode == model.structured_mode == "json_object"
    assert len(server.requests) == 3, "the working mode is remembered: one request"


async def test_auto_falls_back_when_a_500_names_response_format(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    server.handler = without_response_format(replies(completion('{"answer": "a"}')), status=500)
    reply = await make_model().complete(ask(output_schema=ANSWER))
    assert reply.structured_mode == "json_object"
    assert [r.body["response_format"]["type"] for r in server.requests] == [
        "json_schema",
        "json_object",
    ]


async def test_a_plain_500_is_not_taken_for_a_refused_mode(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    server.script(error(500, "the server fell over", kind="server_error"))
    with pytest.raises(ModelError) as caught:
        await make_model().complete(ask(output_schema=ANSWER))
    assert caught.value.retryable
    assert len(server.requests) == 1


async def test_auto_falls_back_to_the_prompt_when_no_response_format_works(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    server.handler = without_response_format(
        replies(completion('{"answer": "c"}')), kinds=("json_schema", "json_object")
    )
    response = await make_model().complete(ask(output_schema=ANSWER))
    assert response.structured_mode == "prompt"
    assert "response_format" not in server.last.body
    assert len(server.requests) == 3


async def test_a_fixed_mode_does_not_fall_back(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    server.handler = without_response_format(replies())
    with pytest.raises(ModelError) as caught:
        await make_model(structured_output="json_schema").complete(ask(output_schema=ANSWER))
    assert caught.value.status == 400
    assert len(server.requests) == 1


async def test_a_schema_the_server_calls_invalid_is_not_retryable(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    server.script(error(400, "Invalid schema for response_format 'output': bad type"))
    with pytest.raises(ModelError) as caught:
        await make_model().complete(ask(output_schema=ANSWER))
    assert not caught.value.retryable
    assert caught.value.error_type == "invalid_schema"
    assert "fix the agent's output schema" in str(caught.value)
    assert len(server.requests) == 1


async def test_an_empty_schema_is_sent_as_an_object_schema(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    server.script(completion('{"any": 1}'))
    await make_model().complete(ask(output_schema={}))
    sent = server.last.body["response_format"]["json_schema"]
    assert sent == {"name": "output", "schema": {"type": "object"}, "strict": False}


async def test_an_array_schema_is_wrapped_and_the_reply_unwrapped(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    schema = {"type": "array", "items": {"type": "string"}}
    server.script(completion('{"value": ["a", "b"]}'))
    response = await make_model().complete(ask(output_schema=schema))
    assert json.loads(response.text) == ["a", "b"]
    assert server.last.body["response_format"]["json_schema"]["schema"] == {
        "type": "object",
        "properties": {"value": schema},
        "required": ["value"],
        "additionalProperties": False,
    }


async def test_tool_mode_forces_a_respond_tool(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    call = tool_call("c1", "respond", '{"answer": "via tool"}')
    server.script(completion(None, tool_calls=[call], finish_reason="tool_calls"))
    response = await make_model(structured_output="tool").complete(ask(output_schema=ANSWER))
    assert json.loads(response.text) == {"answer": "via tool"}
    assert response.message.tool_calls == ()
    assert response.structured_mode == "tool"
    body = server.last.body
    assert body["tool_choice"] == {"type": "function", "function": {"name": "respond"}}
    assert body["tools"][0]["function"]["parameters"] == ANSWER
    assert "response_format" not in body


async def test_tool_mode_beside_other_tools_requires_a_tool_call(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    call = tool_call("c1", "search", "{}")
    server.script(completion(None, tool_calls=[call], finish_reason="tool_calls"))
    model = make_model(structured_output="tool")
    response = await model.complete(ask(tools=(SEARCH,), output_schema=ANSWER))
    assert response.message.tool_calls == (ToolCall("c1", "search", {}),)
    assert server.last.body["tool_choice"] == "required"
    assert [t["function"]["name"] for t in server.last.body["tools"]] == ["search", "respond"]


# -- strict json_schema on OpenAI proper --------------------------------------------------------


def openai_params(schema: dict[str, Any]) -> dict[str, Any]:
    target = Target.of("gpt-4o", azure=False, openai_proper=True)
    request = ask(output_schema=schema)
    shape = Shape.of(schema, strict=True)
    return request_params(target, request, ModelOptions(), "json_schema", shape)


def test_openai_proper_gets_a_strict_schema_with_optional_fields_nullable() -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "tags": {"type": "array"}},
        "required": ["title"],
    }
    form = openai_params(schema)["response_format"]["json_schema"]
    assert form["strict"] is True
    assert form["schema"]["required"] == ["title", "tags"]
    assert form["schema"]["properties"]["tags"]["type"] == ["array", "null"]
    assert form["schema"]["additionalProperties"] is False


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object"},
        {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": True},
        {"type": "object", "properties": {"a": {"not": {"type": "null"}}}},
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/x"}}, "$defs": {"x": {}}},
    ],
)
def test_schemas_outside_the_strict_subset_are_sent_non_strict(schema: dict[str, Any]) -> None:
    assert strict_form(schema) is None
    assert openai_params(schema)["response_format"]["json_schema"]["strict"] is False


def test_strict_nulls_are_dropped_from_the_reply() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
    schema["required"] = ["a"]
    assert json.loads(unwrap('{"a": "x", "b": null}', False, schema)) == {"a": "x"}


# -- images from tools -------------------------------------------------------------------------


async def test_tool_images_follow_the_tool_messages_as_one_user_message(
    server: OpenAIServer, make_model: ModelFactory
) -> None:
    from podium.llm.base import Image, ToolCall

    server.script(completion("a red dot"))
    calls = (ToolCall("c1", "picture", {}), ToolCall("c2", "search", {}))
    dot = Image("aGk=", "image/png")
    messages = (
        Message("user", "What is in the picture?"),
        Message("assistant", tool_calls=calls),
        Message("tool", "[an image]", tool_call_id="c1", name="picture", images=(dot,)),
        Message("tool", "no results", tool_call_id="c2", name="search"),
    )
    await make_model("gpt-4o-mini", images=True).complete(ask(*messages))
    sent = server.last.body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool", "user"]
    parts = sent[-1]["content"]
    assert parts[0] == {"type": "text", "text": "Images returned by tool picture:"}
    assert parts[1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}}


def test_which_models_take_images() -> None:
    assert OpenAIModel("gpt-4o-mini").accepts_images
    assert not OpenAIModel("gpt-3.5-turbo").accepts_images
    assert not OpenAIModel("gpt-4o-mini", base_url="http://127.0.0.1:8080/v1").accepts_images
    assert OpenAIModel("llava", base_url="http://127.0.0.1:8080/v1", images=True).accepts_images
