"""The `openai:` adapter: chat completions through the official SDK, against OpenAI or, via
`base_url`, any server that speaks its protocol (vLLM, Ollama, llama.cpp, LM Studio, OpenRouter).

Choices worth knowing:
- The SDK's own retries are off (`max_retries=0`); failures become `ModelError` with `retryable`
  set and Podium's retry policy decides.
- `output_schema` is sent as `response_format={"type": "json_schema", ..., "strict": False}`:
  non-strict so that schemas outside OpenAI's strict subset still work, and most local servers
  accept this form. The caller validates the reply and re-asks when it does not fit.
- `max_tokens` is sent as `max_tokens`, which local servers and most OpenAI chat models accept;
  OpenAI's reasoning models (o-series, gpt-5) want `max_completion_tokens` and reject it.
- Tool-call arguments that are not a JSON object are kept as `{"_raw": text}` so the caller can
  show the model its mistake and ask again.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import openai
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall
from openai.types.completion_usage import CompletionUsage
from openai.types.shared_params import FunctionDefinition

from podium.errors import ModelError
from podium.llm.base import DeltaSink, Message, ModelRequest, ModelResponse, ToolCall, Usage, caller

PROVIDER = "openai"
# Local servers ignore the key, but the SDK refuses to start without one.
PLACEHOLDER_API_KEY = "podium-local"


class OpenAIModel:
    """One model behind the OpenAI chat-completions API (or a server compatible with it)."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_seconds: float | None = None,
        organization: str | None = None,
    ) -> None:
        self.model = model
        self.name = f"{PROVIDER}:{model}"
        self._base_url = base_url
        self._api_key = api_key
        self._timeout_seconds = timeout_seconds
        self._organization = organization
        self._client: openai.AsyncOpenAI | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    async def complete(
        self, request: ModelRequest, *, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        client = self._client_for(request)
        timeout = request.timeout_seconds or self._timeout_seconds
        params = _request_params(self.model, request, timeout)
        try:
            if on_delta is None:
                completion = await client.chat.completions.create(**params)
                if not completion.choices:
                    raise self._no_choices(request)
                return _from_completion(completion)
            stream = await client.chat.completions.create(
                **params, stream=True, stream_options={"include_usage": True}
            )
            async with stream:
                return await _from_stream(stream, on_delta)
        except openai.OpenAIError as exc:
            raise self._error(exc, request, str(client.base_url), timeout) from exc

    async def aclose(self) -> None:
        """Close the HTTP client of the current event loop, if one was opened."""
        if self._client is not None:
            await self._client.close()
            self._client = self._client_loop = None

    def _client_for(self, request: ModelRequest) -> openai.AsyncOpenAI:
        """The SDK client of the running event loop, created on first use in that loop."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = self._new_client(request)
            self._client_loop = loop
        return self._client

    def _new_client(self, request: ModelRequest) -> openai.AsyncOpenAI:
        base_url = self._base_url or os.environ.get("OPENAI_BASE_URL") or None
        api_key = self._api_key or os.environ.get("OPENAI_API_KEY") or None
        if api_key is None and base_url is None:
            what = (
                "no API key; set OPENAI_API_KEY (or pass api_key), or set OPENAI_BASE_URL "
                "(or pass base_url) to use a local server such as Ollama (http://localhost:11434/v1)"
            )
            raise self._failure(request, what, retryable=False, error_type="config")
        return openai.AsyncOpenAI(
            api_key=api_key or PLACEHOLDER_API_KEY,
            base_url=base_url,
            organization=self._organization,
            max_retries=0,
        )

    def _no_choices(self, request: ModelRequest) -> ModelError:
        what = "the reply has no choices (a content filter?); check the server's log"
        return self._failure(request, what, retryable=False, error_type="invalid_response")

    def _error(
        self, exc: openai.OpenAIError, request: ModelRequest, base_url: str, timeout: float | None
    ) -> ModelError:
        what, retryable, error_type = _classify(exc, self.model, base_url, timeout)
        status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
        return self._failure(
            request, what, retryable=retryable, error_type=error_type, status=status
        )

    def _failure(
        self,
        request: ModelRequest,
        what: str,
        *,
        retryable: bool,
        error_type: str,
        status: int | None = None,
    ) -> ModelError:
        """A ModelError whose message names the model, the agent and the step."""
        return ModelError(
            f"{caller(self.name, request)}: {what}",
            retryable=retryable,
            provider=PROVIDER,
            status=status,
            error_type=error_type,
        )


# -- request ----------------------------------------------------------------------------------


def _request_params(model: str, request: ModelRequest, timeout: float | None) -> dict[str, Any]:
    params: dict[str, Any] = {"model": model, "messages": [_message(m) for m in request.messages]}
    if request.tools:
        params["tools"] = [_tool(t.name, t.description, t.parameters) for t in request.tools]
    if request.output_schema is not None:
        params["response_format"] = _response_format(request.output_schema)
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.max_tokens is not None:
        params["max_tokens"] = request.max_tokens
    if timeout is not None:
        params["timeout"] = timeout
    return params


def _message(message: Message) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "user":
        return {"role": "user", "content": message.content}
    if message.role == "tool":
        call_id = message.tool_call_id or ""
        return {"role": "tool", "content": message.content, "tool_call_id": call_id}
    if not message.tool_calls:
        return {"role": "assistant", "content": message.content}
    calls: list[ChatCompletionMessageFunctionToolCallParam] = [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
        }
        for call in message.tool_calls
    ]
    return {"role": "assistant", "content": message.content or None, "tool_calls": calls}


def _tool(name: str, description: str, parameters: Mapping[str, Any]) -> ChatCompletionToolParam:
    spec: FunctionDefinition = {"name": name, "description": description}
    return {"type": "function", "function": spec | {"parameters": dict(parameters)}}


def _response_format(schema: Mapping[str, Any]) -> dict[str, Any]:
    json_schema = {"name": "output", "schema": dict(schema), "strict": False}
    return {"type": "json_schema", "json_schema": json_schema}


# -- response ---------------------------------------------------------------------------------


def _from_completion(completion: ChatCompletion) -> ModelResponse:
    choice = completion.choices[0]
    calls = tuple(
        ToolCall(id=call.id, name=call.function.name, arguments=_arguments(call.function.arguments))
        for call in choice.message.tool_calls or ()
        if call.type == "function"
    )
    message = Message(role="assistant", content=choice.message.content or "", tool_calls=calls)
    return ModelResponse(
        message=message,
        usage=_usage(completion.usage),
        model=completion.model,
        finish_reason=choice.finish_reason,
    )


def _usage(usage: CompletionUsage | None) -> Usage:
    if usage is None:
        return Usage()
    return Usage(input_tokens=usage.prompt_tokens or 0, output_tokens=usage.completion_tokens or 0)


def _arguments(text: str | None) -> dict[str, Any]:
    """Tool-call arguments as an object; anything else is kept raw for the caller to re-ask."""
    if not text or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_raw": text}


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _StreamState:
    """What the chunks of one streamed reply have said so far."""

    content: list[str] = field(default_factory=list)
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    finish_reason: str | None = None

    def add(self, chunk: ChatCompletionChunk, on_delta: DeltaSink) -> None:
        self.model = chunk.model or self.model
        if chunk.usage is not None:
            self.usage = _usage(chunk.usage)
        for choice in chunk.choices[:1]:
            self.finish_reason = choice.finish_reason or self.finish_reason
            if choice.delta.content:
                self.content.append(choice.delta.content)
                on_delta(choice.delta.content)
            for part in choice.delta.tool_calls or ():
                self._add_call_part(part)

    def _add_call_part(self, part: ChoiceDeltaToolCall) -> None:
        call = self.calls.setdefault(part.index, _PartialCall())
        call.id = call.id or part.id or ""
        if part.function is not None:
            call.name = call.name or part.function.name or ""
            call.arguments.append(part.function.arguments or "")

    def response(self) -> ModelResponse:
        calls = tuple(
            ToolCall(id=c.id, name=c.name, arguments=_arguments("".join(c.arguments)))
            for _, c in sorted(self.calls.items())
        )
        message = Message(role="assistant", content="".join(self.content), tool_calls=calls)
        return ModelResponse(
            message=message, usage=self.usage, model=self.model, finish_reason=self.finish_reason
        )


async def _from_stream(
    stream: openai.AsyncStream[ChatCompletionChunk], on_delta: DeltaSink
) -> ModelResponse:
    state = _StreamState()
    async for chunk in stream:
        state.add(chunk, on_delta)
    return state.response()


# -- errors -----------------------------------------------------------------------------------


def _classify(
    exc: openai.OpenAIError, model: str, base_url: str, timeout: float | None
) -> tuple[str, bool, str]:
    """(what went wrong and what to do, retryable, error_type) for one SDK exception."""
    if isinstance(exc, openai.APITimeoutError):
        after = f" after {timeout:g}s" if timeout is not None else ""
        return f"timed out{after}; the server is slow or busy", True, "timeout"
    if isinstance(exc, openai.APIConnectionError):
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        hint = "check the server is running and OPENAI_BASE_URL / base_url is right"
        return f"cannot connect to {base_url}{cause}; {hint}", True, "connection"
    if isinstance(exc, openai.APIStatusError):
        return _classify_status(exc.status_code, _server_message(exc), model, base_url)
    if isinstance(exc, openai.APIError):
        return f"the server sent an error: {exc.message}", True, "server"
    return f"the OpenAI client failed: {exc}", False, "config"


def _classify_status(status: int, message: str, model: str, base_url: str) -> tuple[str, bool, str]:
    head = f"HTTP {status}"
    if status == 429:
        return f"{head} rate limited: {message}", True, "rate_limit"
    if status >= 500:
        return f"{head} server error: {message}", True, "server"
    if status in (401, 403):
        hint = "check OPENAI_API_KEY (or the api_key given to the model)"
        return f"{head} not authorised: {message}; {hint}", False, "auth"
    if status == 404:
        hint = f"the model name {model!r} or the base URL {base_url} is wrong"
        return f"{head} not found: {message}; {hint}", False, "not_found"
    return f"{head} request refused: {message}", False, "bad_request"


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, Mapping) and isinstance(body.get("message"), str):
        return str(body["message"])
    if isinstance(body, str) and body:
        return body[:500]
    return exc.message
