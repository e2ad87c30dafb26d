"""The `anthropic:<model>` adapter: Podium's `Model` over the official SDK's Messages API.

Structured output: the Messages API has no response-format switch, so a request with an
`output_schema` offers a tool named `respond` whose input schema is that schema and forces it
(`tool_choice={"type": "tool", "name": "respond"}`); the adapter returns the tool's input as JSON
text in the message content, with no tool calls and `finish_reason="end_turn"`. When the request
also offers tools, forcing `respond` would shut them out, so the choice is `{"type": "any"}`: the
model calls its tools as usual and answers by calling `respond`. The API wants an object as a
tool's input, so an empty schema goes as `{"type": "object"}` and a non-object root (an array…) is
wrapped as `{"value": …}` and unwrapped from the reply.

The SDK's own retries are off: errors become `ModelError`s, classified retryable or not, and
Podium's retry policy decides. The SDK has no `temperature` or `top_p` argument; they are sent in
the body. Of `ModelOptions`, Anthropic takes temperature, max_tokens, top_p, stop (as
`stop_sequences`), tool_choice, the timeout and stream; the rest are ignored. A reply stopped by
`max_tokens` is an error (not retryable), never a truncated answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias, TypedDict

import anthropic
from anthropic import NOT_GIVEN, AsyncAnthropic
from anthropic.types import (
    AssistantMessageParam,
    MessageParam,
    TextBlockParam,
    ToolChoiceParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlockParam,
    UserMessageParam,
)

from podium.errors import ModelError
from podium.llm._anthropic_stream import (
    MalformedToolInput,
    Reply,
    StreamFolder,
    reply_from_message,
)
from podium.llm._structured import object_schema, unwrap
from podium.llm.base import DeltaSink, Message, ModelRequest, ModelResponse, ToolSpec, caller

PROVIDER = "anthropic"
RESPOND_TOOL = "respond"
DEFAULT_BASE_URL = "https://api.anthropic.com"
_RETRYABLE_TYPES = frozenset({"overloaded_error", "rate_limit_error", "api_error", "timeout_error"})

_Block: TypeAlias = TextBlockParam | ToolUseBlockParam | ToolResultBlockParam


class _CreateArgs(TypedDict, total=False):
    """`messages.create` arguments; optional ones are left out rather than sent empty."""

    model: str
    max_tokens: int
    messages: list[MessageParam]
    system: str
    tools: list[ToolParam]
    tool_choice: ToolChoiceParam
    stop_sequences: list[str]
    extra_body: dict[str, object]
    timeout: float


class AnthropicModel:
    """One Claude model. The API key comes from `api_key` or `ANTHROPIC_API_KEY`, the endpoint from
    `base_url` or `ANTHROPIC_BASE_URL`; both are read at the first call. One SDK client is made per
    event loop, lazily."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_seconds: float | None = None,
        max_tokens_default: int = 4096,
    ) -> None:
        self.model = model
        self.name = f"{PROVIDER}:{model}"
        self.accepts_images = True  # every Claude model with tools takes images in tool results
        self.timeout_seconds = timeout_seconds
        self.max_tokens_default = max_tokens_default
        self._base_url = base_url
        self._api_key = api_key
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncAnthropic] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def base_url(self) -> str:
        return self._base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL

    async def complete(
        self, request: ModelRequest, *, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        where = self._where(request)
        client = self._client(where)
        args = self._create_args(request)
        stream = on_delta if request.options.stream else None
        try:
            reply = await _send(client, args, stream, where)
        except anthropic.APIError as err:
            raise _classify(err, where, self.base_url, self.model) from err
        if reply.stop_reason == "max_tokens":
            message = (
                f"{where}: the reply hit the token limit before it was finished "
                "(stop_reason: max_tokens); raise max_tokens for this agent or provider"
            )
            raise _error(message, False, "length")
        if on_delta is not None and stream is None and reply.text:
            on_delta(reply.text)
        return self._response(reply, request.output_schema)

    async def aclose(self) -> None:
        """Close the client made for the running event loop, if any."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    def _where(self, request: ModelRequest) -> str:
        return caller(self.name, request)

    def _client(self, where: str) -> AsyncAnthropic:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self._new_client(where)
        return client

    def config_problem(self) -> str | None:
        """No key: every call would fail (asked when a run is submitted)."""
        if self._api_key or os.environ.get("ANTHROPIC_API_KEY"):
            return None
        return "no API key; set ANTHROPIC_API_KEY (or pass api_key=)"

    def _new_client(self, where: str) -> AsyncAnthropic:
        api_key = self._api_key or os.environ.get("ANTHROPIC_API_KEY")
        problem = self.config_problem()
        if problem is not None:
            raise _error(f"{where}: {problem}", False, "config")
        timeout = NOT_GIVEN if self.timeout_seconds is None else self.timeout_seconds
        return AsyncAnthropic(
            api_key=api_key, base_url=self.base_url, timeout=timeout, max_retries=0
        )

    def _create_args(self, request: ModelRequest) -> _CreateArgs:
        options = request.options
        system, messages = _split_system(request.messages)
        tools, tool_choice = _tooling(request)
        max_tokens = options.max_tokens or self.max_tokens_default
        args = _CreateArgs(model=self.model, max_tokens=max_tokens, messages=_turns(messages))
        if system:
            args["system"] = system
        if tools:
            args["tools"] = tools
        if tool_choice is not None:
            args["tool_choice"] = tool_choice
        sampling = {"temperature": options.temperature, "top_p": options.top_p}
        if body := {key: value for key, value in sampling.items() if value is not None}:
            args["extra_body"] = dict(body)
        if options.stop:
            args["stop_sequences"] = list(options.stop)
        if options.timeout_seconds is not None:
            args["timeout"] = options.timeout_seconds
        return args

    def _response(self, reply: Reply, schema: Mapping[str, Any] | None) -> ModelResponse:
        message = Message(role="assistant", content=reply.text, tool_calls=reply.tool_calls)
        finish_reason = reply.stop_reason
        answer = next((c for c in reply.tool_calls if c.name == RESPOND_TOOL), None)
        if schema is not None and answer is not None:
            content = unwrap(
                json.dumps(answer.arguments, ensure_ascii=False), wrapped(schema), None
            )
            message, finish_reason = Message(role="assistant", content=content), "end_turn"
        return ModelResponse(
            message=message,
            usage=reply.usage,
            model=self.name,
            finish_reason=finish_reason,
            structured_mode="tool" if schema is not None else None,
        )


async def _send(
    client: AsyncAnthropic, args: _CreateArgs, on_delta: DeltaSink | None, where: str
) -> Reply:
    if on_delta is not None:
        return await _read_stream(client, args, on_delta, where)
    try:
        message = await client.messages.create(**args, stream=False)
    except ValueError as err:  # the SDK refuses a long non-streamed call before sending it
        raise _error(
            f"{where}: {err}; stream the call or lower max_tokens", False, "config"
        ) from err
    return reply_from_message(message)


async def _read_stream(
    client: AsyncAnthropic, args: _CreateArgs, on_delta: DeltaSink, where: str
) -> Reply:
    folder = StreamFolder(on_delta)
    stream = await client.messages.create(**args, stream=True)
    async with stream:
        try:
            async for event in stream:
                folder.feed(event)
        except MalformedToolInput as err:
            raise _error(f"{where}: {err}; the stream was garbled", True, "response") from err
    return folder.reply()


# --- request mapping ---------------------------------------------------------------------------


def _split_system(messages: Sequence[Message]) -> tuple[str, list[Message]]:
    """System messages go to the `system` parameter (joined by blank lines); the rest stay."""
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    return system, [m for m in messages if m.role != "system"]


def _turns(messages: Sequence[Message]) -> list[MessageParam]:
    """User and assistant turns; tool results become user turns. Consecutive messages of one
    role merge into one turn, so a run of tool results is one user message, as the API wants."""
    turns: list[tuple[Literal["user", "assistant"], list[_Block]]] = []
    for message in messages:
        role: Literal["user", "assistant"] = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    return [_turn(role, blocks) for role, blocks in turns]


def _turn(role: Literal["user", "assistant"], blocks: list[_Block]) -> MessageParam:
    if role == "assistant":
        return AssistantMessageParam(role="assistant", content=blocks)
    return UserMessageParam(role="user", content=blocks)


def _blocks(message: Message) -> list[_Block]:
    if message.role == "tool":
        content: Any = message.content
        if message.images:
            content = [{"type": "text", "text": message.content}] + [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": i.mime_type, "data": i.data},
                }
                for i in message.images
            ]
        result = ToolResultBlockParam(
            type="tool_result", tool_use_id=message.tool_call_id or "", content=content
        )
        return [result]
    blocks: list[_Block] = []
    if message.content:
        blocks.append(TextBlockParam(type="text", text=message.content))
    for call in message.tool_calls:
        use = ToolUseBlockParam(type="tool_use", id=call.id, name=call.name, input=call.arguments)
        blocks.append(use)
    return blocks


def _tool(spec: ToolSpec) -> ToolParam:
    schema = dict(spec.parameters)
    return ToolParam(name=spec.name, description=spec.description, input_schema=schema)


def _tooling(request: ModelRequest) -> tuple[list[ToolParam], ToolChoiceParam | None]:
    """The request's tools, plus the forced `respond` tool when structured output is asked for."""
    tools = [_tool(spec) for spec in request.tools]
    if request.output_schema is None:
        choice = request.options.tool_choice
        return tools, _tool_choice(choice) if tools and choice is not None else None
    description = "Give your final answer as this tool's input; it must match the schema."
    schema, _ = object_schema(request.output_schema)
    respond = ToolSpec(RESPOND_TOOL, description, schema)
    if not tools:
        return [_tool(respond)], {"type": "tool", "name": RESPOND_TOOL}
    return [*tools, _tool(respond)], {"type": "any"}


def _tool_choice(choice: str) -> ToolChoiceParam:
    """Podium's `tool_choice` in Anthropic's terms ("required" is "any"; a name forces it)."""
    if choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    return {"type": "tool", "name": choice}


def wrapped(schema: Mapping[str, Any]) -> bool:
    """Whether the schema went out wrapped as `{"value": …}` (its root is not an object)."""
    return object_schema(schema)[1]


# --- errors ------------------------------------------------------------------------------------


def _error(message: str, retryable: bool, error_type: str, status: int | None = None) -> ModelError:
    return ModelError(
        message, retryable=retryable, provider=PROVIDER, status=status, error_type=error_type
    )


def _classify(err: anthropic.APIError, where: str, base_url: str, model: str) -> ModelError:
    if isinstance(err, anthropic.APITimeoutError):
        message = f"{where}: timed out; raise timeout_seconds if the model needs longer"
        return _error(message, True, "timeout")
    if isinstance(err, anthropic.APIConnectionError):
        message = f"{where}: cannot connect to {base_url} ({err}); check ANTHROPIC_BASE_URL"
        return _error(message, True, "connection")
    if isinstance(err, anthropic.APIStatusError):
        return _status_error(err, where, model)
    return _error(f"{where}: unexpected response: {err}", False, "response")


def _status_error(err: anthropic.APIStatusError, where: str, model: str) -> ModelError:
    status, (kind, detail) = err.status_code, _body_error(err)
    label = kind.removesuffix("_error") or "error"
    retryable, error_type, advice = _status_kind(status, kind, model)
    message = f"{where}: HTTP {status} {label}: {detail}; {advice}"
    return _error(message, retryable, error_type, status)


def _body_error(err: anthropic.APIStatusError) -> tuple[str, str]:
    """`error.type` and `error.message` from an Anthropic error body, else ("", the SDK's text)."""
    body = err.body if isinstance(err.body, dict) else {}
    error = body.get("error")
    if not isinstance(error, dict):
        error = {}
    return str(error.get("type") or ""), str(error.get("message") or err.message)


def _status_kind(status: int, kind: str, model: str) -> tuple[bool, str, str]:
    """(retryable, error_type, what to do) for an HTTP status and the body's `error.type`.
    A mid-stream `error` event arrives with status 200, so the type decides there."""
    again = "retryable; Podium's retry policy will try again"
    if status == 429 or kind == "rate_limit_error":
        return True, "rate_limit", again
    if status == 529 or kind == "overloaded_error":
        return True, "overloaded", again
    if status == 408 or status >= 500 or kind in _RETRYABLE_TYPES:
        return True, "server", again
    if status in (401, 403):
        return False, "auth", "check ANTHROPIC_API_KEY (or the api_key argument)"
    if status == 404:
        return False, "not_found", f"check the model name {model!r} and the base URL"
    return False, "bad_request", "fix the request; retrying will not help"
