"""Builds the chat-completions request body for one call: messages, tools, the model options
the protocol takes, and the structured-output mode's part."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from openai.types.chat import (
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)
from openai.types.shared_params import FunctionDefinition

from podium.llm._structured import (
    RESPOND_TOOL,
    SCHEMA_NAME,
    Mode,
    object_schema,
    schema_instruction,
    strict_form,
)
from podium.llm.base import Message, ModelOptions, ModelRequest

# OpenAI's reasoning models take `max_completion_tokens` and refuse `max_tokens`.
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")
_RESPOND_DESCRIPTION = (
    "Give your final answer as this tool's arguments; they must match the schema."
)


@dataclass(frozen=True, slots=True)
class Shape:
    """How the output schema goes out: the schema sent, whether a non-object root was wrapped,
    and the caller's (object) schema when a strict form of it was sent instead."""

    schema: dict[str, Any]
    wrapped: bool
    strict_from: dict[str, Any] | None

    @classmethod
    def of(cls, schema: Mapping[str, Any], *, strict: bool) -> Shape:
        sent, wrapped = object_schema(schema)
        strict_schema = strict_form(sent) if strict else None
        if strict_schema is None:
            return cls(sent, wrapped, None)
        return cls(strict_schema, wrapped, sent)


@dataclass(frozen=True, slots=True)
class Target:
    """Where the request goes: the model (or Azure deployment) name, and what the server takes."""

    model: str
    completion_tokens_key: bool  # send `max_completion_tokens` rather than `max_tokens`
    strict: bool  # OpenAI proper: strict json_schema when the schema fits

    @classmethod
    def of(cls, model: str, *, azure: bool, openai_proper: bool) -> Target:
        reasoning = bool(_REASONING_MODEL.match(model.rsplit("/", 1)[-1].lower()))
        return cls(model, azure or reasoning, openai_proper)


def request_params(
    target: Target,
    request: ModelRequest,
    options: ModelOptions,
    mode: Mode | None,
    shape: Shape | None,
) -> dict[str, Any]:
    messages = _messages(request.messages)
    tools = [_tool(t.name, t.description, t.parameters) for t in request.tools]
    params: dict[str, Any] = {"model": target.model}
    if mode is not None and shape is not None:
        params |= _structured(mode, shape, messages, tools)
    params["messages"] = messages
    if tools:
        params["tools"] = tools
    return params | _options(target, options, bool(tools), forced="tool_choice" in params)


def _structured(
    mode: Mode,
    shape: Shape,
    messages: list[ChatCompletionMessageParam],
    tools: list[ChatCompletionToolParam],
) -> dict[str, Any]:
    """The mode's part of the body; the prompt modes add a system message, the tool mode a tool."""
    if mode == "json_schema":
        form = {
            "name": SCHEMA_NAME,
            "schema": shape.schema,
            "strict": shape.strict_from is not None,
        }
        return {"response_format": {"type": "json_schema", "json_schema": form}}
    if mode == "tool":
        others = bool(tools)
        tools.append(_tool(RESPOND_TOOL, _RESPOND_DESCRIPTION, shape.schema))
        if others:
            return {"tool_choice": "required"}
        return {"tool_choice": {"type": "function", "function": {"name": RESPOND_TOOL}}}
    messages.append({"role": "system", "content": schema_instruction(shape.schema)})
    return {"response_format": {"type": "json_object"}} if mode == "json_object" else {}


def _options(
    target: Target, options: ModelOptions, has_tools: bool, *, forced: bool
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name in ("temperature", "top_p", "seed", "reasoning_effort"):
        if (value := getattr(options, name)) is not None:
            params[name] = value
    if options.stop is not None:
        params["stop"] = list(options.stop)
    if options.max_tokens is not None:
        key = "max_completion_tokens" if target.completion_tokens_key else "max_tokens"
        params[key] = options.max_tokens
    if has_tools and options.tool_choice is not None and not forced:
        params["tool_choice"] = _tool_choice(options.tool_choice)
    if has_tools and options.parallel_tool_calls is not None:
        params["parallel_tool_calls"] = options.parallel_tool_calls
    return params


def _tool_choice(choice: str) -> str | dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def _messages(messages: Sequence[Message]) -> list[ChatCompletionMessageParam]:
    """The chat messages; images a tool returned follow the run of tool messages they belong to
    as one user message (a tool message cannot carry images, and nothing may come between the
    tool messages that answer one assistant turn)."""
    sent: list[ChatCompletionMessageParam] = []
    pending: list[Message] = []
    for message in messages:
        if message.role != "tool" and pending:
            sent.append(_images_message(pending))
            pending = []
        sent.append(_message(message))
        if message.role == "tool" and message.images:
            pending.append(message)
    if pending:
        sent.append(_images_message(pending))
    return sent


def _images_message(messages: Sequence[Message]) -> ChatCompletionMessageParam:
    parts: list[dict[str, Any]] = []
    for message in messages:
        parts.append({"type": "text", "text": f"Images returned by tool {message.name}:"})
        parts += [
            {"type": "image_url", "image_url": {"url": f"data:{i.mime_type};base64,{i.data}"}}
            for i in message.images
        ]
    return cast(ChatCompletionMessageParam, {"role": "user", "content": parts})


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
    # "", never null: llama.cpp's server refuses a null content with a 500.
    return {"role": "assistant", "content": message.content, "tool_calls": calls}


def _tool(name: str, description: str, parameters: Mapping[str, Any]) -> ChatCompletionToolParam:
    spec: FunctionDefinition = {"name": name, "description": description}
    return {"type": "function", "function": spec | {"parameters": dict(parameters)}}
