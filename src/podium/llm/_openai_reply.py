"""Reads an OpenAI-protocol reply, whole or streamed, into a `ModelResponse`, and refuses the
replies that only look like answers: none at all, cut off, or stopped at the token limit."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall
from openai.types.completion_usage import CompletionUsage

from podium.llm.base import (
    DeltaSink,
    Message,
    ModelRequest,
    ModelResponse,
    ToolCall,
    Usage,
    estimate_usage,
)


class BadReply(Exception):
    """A reply that must not pass for an answer; the adapter names the call and raises it as a
    `ModelError`."""

    def __init__(self, what: str, *, retryable: bool, error_type: str) -> None:
        super().__init__(what)
        self.what, self.retryable, self.error_type = what, retryable, error_type


@dataclass(frozen=True, slots=True)
class Raw:
    """What the server said, before it is checked and shaped."""

    content: str
    calls: tuple[ToolCall, ...]
    usage: Usage | None
    model: str
    finish_reason: str | None
    had_choices: bool


def checked(raw: Raw, request: ModelRequest) -> ModelResponse:
    """The reply as a response, or `BadReply` when it is empty, cut off or ran out of tokens.
    Usage the server left out (or sent as all zeros) is estimated, and marked so."""
    if not raw.had_choices:
        raise BadReply(
            "the server sent no answer (no choices); it may have dropped the request or "
            "filtered the reply",
            retryable=True,
            error_type="empty_response",
        )
    if raw.finish_reason is None:
        raise BadReply(
            "the reply was cut off (no finish reason); the server or a proxy closed it early",
            retryable=True,
            error_type="truncated",
        )
    if raw.finish_reason == "length":
        raise BadReply(
            "the reply hit the token limit before it was finished (finish_reason: length); "
            "raise max_tokens for this agent or provider, or ask for a shorter answer",
            retryable=False,
            error_type="length",
        )
    if not raw.content.strip() and not raw.calls:
        raise BadReply(
            "the reply is empty (no text and no tool calls)",
            retryable=True,
            error_type="empty_response",
        )
    message = Message(role="assistant", content=raw.content, tool_calls=raw.calls)
    usage = raw.usage
    if usage is None or usage.total_tokens == 0:  # left out, or zeros as some servers send
        usage = estimate_usage(request, message)
    return ModelResponse(
        message=message, usage=usage, model=raw.model, finish_reason=raw.finish_reason
    )


def from_completion(completion: ChatCompletion) -> Raw:
    if not completion.choices:
        return Raw("", (), _usage(completion.usage), completion.model, None, had_choices=False)
    choice = completion.choices[0]
    calls = tuple(
        ToolCall(id=call.id, name=call.function.name, arguments=_arguments(call.function.arguments))
        for call in choice.message.tool_calls or ()
        if call.type == "function"
    )
    return Raw(
        content=choice.message.content or "",
        calls=calls,
        usage=_usage(completion.usage),
        model=completion.model,
        finish_reason=choice.finish_reason,
        had_choices=True,
    )


def _usage(usage: CompletionUsage | None) -> Usage | None:
    if usage is None:
        return None
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

    on_delta: DeltaSink
    content: list[str] = field(default_factory=list)
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    usage: Usage | None = None
    model: str = ""
    finish_reason: str | None = None
    had_choices: bool = False

    def add(self, chunk: ChatCompletionChunk) -> None:
        self.model = chunk.model or self.model
        if chunk.usage is not None:
            self.usage = _usage(chunk.usage)
        for choice in chunk.choices[:1]:
            self.had_choices = True
            self.finish_reason = choice.finish_reason or self.finish_reason
            if choice.delta.content:
                self.content.append(choice.delta.content)
                self.on_delta(choice.delta.content)
            for part in choice.delta.tool_calls or ():
                self._add_call_part(part)

    def _add_call_part(self, part: ChoiceDeltaToolCall) -> None:
        call = self.calls.setdefault(part.index, _PartialCall())
        call.id = call.id or part.id or ""
        if part.function is not None:
            call.name = call.name or part.function.name or ""
            call.arguments.append(part.function.arguments or "")

    def raw(self) -> Raw:
        calls = tuple(
            ToolCall(id=c.id, name=c.name, arguments=_arguments("".join(c.arguments)))
            for _, c in sorted(self.calls.items())
        )
        return Raw(
            "".join(self.content),
            calls,
            self.usage,
            self.model,
            self.finish_reason,
            self.had_choices,
        )


async def from_stream(stream: openai.AsyncStream[ChatCompletionChunk], on_delta: DeltaSink) -> Raw:
    state = _StreamState(on_delta)
    async with stream:
        async for chunk in stream:
            state.add(chunk)
    return state.raw()
