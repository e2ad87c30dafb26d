"""Folds an Anthropic Messages SSE stream (and a whole `Message`) into one `Reply`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from anthropic.types import (
    Message,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStreamEvent,
)

from podium.llm.base import DeltaSink, ToolCall, Usage


class MalformedToolInput(ValueError):
    """A streamed tool_use block's `input_json_delta` fragments do not make a JSON object."""


@dataclass(frozen=True, slots=True)
class Reply:
    """What the provider answered, before structured output is unwrapped."""

    text: str
    tool_calls: tuple[ToolCall, ...]
    usage: Usage
    stop_reason: str | None


def reply_from_message(message: Message) -> Reply:
    """Read a non-streamed `Message`: text blocks joined, tool_use blocks as calls."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in message.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            calls.append(ToolCall(id=block.id, name=block.name, arguments=dict(block.input)))
    usage = Usage(message.usage.input_tokens, message.usage.output_tokens)
    return Reply("".join(texts), tuple(calls), usage, message.stop_reason)


@dataclass(slots=True)
class _ToolBlock:
    id: str
    name: str
    json_parts: list[str] = field(default_factory=list)

    def call(self) -> ToolCall:
        raw = "".join(self.json_parts).strip()
        try:
            arguments: Any = json.loads(raw) if raw else {}
        except json.JSONDecodeError as err:
            raise MalformedToolInput(f"tool {self.name} input is not JSON ({err})") from err
        if not isinstance(arguments, dict):
            raise MalformedToolInput(f"tool {self.name} input is not a JSON object: {raw[:80]}")
        return ToolCall(id=self.id, name=self.name, arguments=arguments)


@dataclass(slots=True)
class StreamFolder:
    """Feed it every stream event in order; text fragments go to `on_delta` as they arrive.
    A tool_use block's input arrives as `input_json_delta` fragments and is parsed at its stop
    (raises `MalformedToolInput` when the fragments do not make a JSON object)."""

    on_delta: DeltaSink
    texts: list[str] = field(default_factory=list)
    tools: dict[int, _ToolBlock] = field(default_factory=dict)
    calls: list[ToolCall] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str | None = None

    def feed(self, event: RawMessageStreamEvent) -> None:
        if event.type == "message_start":
            self._start(event)
        elif event.type == "content_block_start":
            self._block_start(event)
        elif event.type == "content_block_delta":
            self._block_delta(event)
        elif event.type == "content_block_stop":
            tool = self.tools.pop(event.index, None)
            if tool is not None:
                self.calls.append(tool.call())
        elif event.type == "message_delta":
            self._message_delta(event)

    def reply(self) -> Reply:
        usage = Usage(self.input_tokens, self.output_tokens)
        return Reply("".join(self.texts), tuple(self.calls), usage, self.stop_reason)

    def _start(self, event: RawMessageStartEvent) -> None:
        self.input_tokens = event.message.usage.input_tokens
        self.output_tokens = event.message.usage.output_tokens

    def _block_start(self, event: RawContentBlockStartEvent) -> None:
        block = event.content_block
        if block.type == "tool_use":
            self.tools[event.index] = _ToolBlock(block.id, block.name)
        elif block.type == "text" and block.text:
            self._text(block.text)

    def _block_delta(self, event: RawContentBlockDeltaEvent) -> None:
        delta = event.delta
        if delta.type == "text_delta":
            self._text(delta.text)
        elif delta.type == "input_json_delta" and event.index in self.tools:
            self.tools[event.index].json_parts.append(delta.partial_json)

    def _message_delta(self, event: RawMessageDeltaEvent) -> None:
        self.output_tokens = event.usage.output_tokens
        if event.usage.input_tokens is not None:
            self.input_tokens = event.usage.input_tokens
        if event.delta.stop_reason is not None:
            self.stop_reason = event.delta.stop_reason

    def _text(self, text: str) -> None:
        self.texts.append(text)
        self.on_delta(text)
