"""The model port: messages, tool calls, structured output, streamed deltas and usage.

Adapters (openai, anthropic, scripted, the function model in `podium.testing`) implement `Model`;
`podium.llm.resolve_model("provider:model")` picks one. Adapters never retry: Podium's retry policy
applies, so they raise `podium.errors.ModelError` with `retryable` set and let the step decide.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from podium.agents import AgentOptions

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A model's request to call a tool. `arguments` is already parsed JSON (an object)."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Image:
    """An image a tool returned, for models that take images: base64 `data` and its MIME type."""

    data: str
    mime_type: str


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message. Assistant messages may carry tool calls; tool messages answer one call,
    and may carry the images the tool returned (sent only to models that take images; the text
    describes them for the others)."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    images: tuple[Image, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model: its name, what it does, and a JSON Schema for its arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of a call. `estimated` is True when the provider gave none and they were
    counted here (see `estimate_usage`), so they are near, not exact; it does not take part in
    `==` (usages compare by their counts)."""

    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = field(default=False, compare=False)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.estimated or other.estimated,
        )

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class ModelOptions:
    """How to sample one call. None leaves a setting to the provider; an adapter sends what its
    provider takes and ignores the rest. `tool_choice` is "auto", "none", "required" or a tool's
    name (that tool is forced). `stream=False` asks for one whole reply, never a stream."""

    temperature: float | None = None
    max_tokens: int | None = None
    reasoning_effort: str | None = None
    seed: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    tool_choice: str | None = None
    parallel_tool_calls: bool | None = None
    timeout_seconds: float | None = None
    stream: bool = True

    def merged(self, over: ModelOptions) -> ModelOptions:
        """These options laid over `over` (a provider's defaults): fields set here win; `stream`
        is off when either says so."""
        taken = {
            name: value if value is not None else getattr(over, name)
            for name in _OPTIONAL_FIELDS
            if (value := getattr(self, name)) is not None or getattr(over, name) is not None
        }
        return ModelOptions(**taken, stream=self.stream and over.stream)


_OPTIONAL_FIELDS = tuple(name for name in ModelOptions.__slots__ if name != "stream")


@dataclass(frozen=True, slots=True)
class AzureSettings:
    """Azure OpenAI: the resource's endpoint, the API version, and the deployment (else the
    model name is taken as the deployment)."""

    endpoint: str
    api_version: str
    deployment: str | None = None


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """What one call sends. `output_schema` asks for JSON matching it (the adapter uses the
    provider's structured-output feature where it has one). `agent` and `step_id` identify the
    caller (the scripted model keys its replies by agent; tracing and errors name them)."""

    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    output_schema: Mapping[str, Any] | None = None
    options: ModelOptions = ModelOptions()
    agent: str | None = None
    step_id: str | None = None


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """The assistant's reply: its message (text and/or tool calls), usage, and provenance."""

    message: Message
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    finish_reason: str | None = None
    structured_mode: str | None = None  # how structured output was asked for: json_schema, …

    @property
    def text(self) -> str:
        return self.message.content


DeltaSink = Callable[[str], None]


class Model(Protocol):
    """One model behind one provider. `name` is the `provider:model` string it was resolved from.
    A model that takes images in tool results has `accepts_images = True` (read with
    `accepts_images(model)`; a model without the attribute takes none). A model that can tell
    before any call that no call can succeed (no API key) has `config_problem() -> str | None`
    (read with `config_problem(model)`), asked when a run is submitted."""

    name: str

    async def complete(
        self, request: ModelRequest, *, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        """Send the request and return the whole reply. When `on_delta` is given, stream and call
        it with each text fragment as it arrives (live output; the reply is still returned whole).
        Raise `ModelError` on failure, never retry."""
        ...


def model_options(options: AgentOptions, *, tool_choice: str | None = None) -> ModelOptions:
    """Options as an agent file, a step or a provider writes them (validated), as a request
    takes them; `tool_choice` is the forced tool's name as the model sees it."""
    return ModelOptions(
        temperature=options.temperature,
        max_tokens=options.max_tokens,
        reasoning_effort=options.reasoning_effort,
        seed=options.seed,
        top_p=options.top_p,
        stop=tuple(options.stop) if options.stop else None,
        tool_choice=tool_choice,
        parallel_tool_calls=options.parallel_tool_calls,
        timeout_seconds=options.timeout,
        stream=options.stream is not False,
    )


def accepts_images(model: object) -> bool:
    return bool(getattr(model, "accepts_images", False))


def config_problem(model: object) -> str | None:
    """Why no call of `model` can succeed as configured (no API key, no endpoint), or None."""
    check = getattr(model, "config_problem", None)
    return check() if callable(check) else None


def estimate_usage(request: ModelRequest, message: Message) -> Usage:
    """Token counts for a call the provider gave none for: about four characters a token (no
    tokenizer is installed; near enough for budgets and cost), marked `estimated`."""
    sent = sum(len(m.content) for m in request.messages)
    said = len(message.content) + sum(
        len(call.name) + len(json.dumps(call.arguments)) for call in message.tool_calls
    )
    return Usage(input_tokens=-(-sent // 4), output_tokens=-(-said // 4), estimated=True)


def caller(model_name: str, request: ModelRequest) -> str:
    """`openai:gpt-4o-mini (agent researcher, step plan.s1)`: how errors name a call."""
    who = [f"agent {request.agent}"] if request.agent else []
    who += [f"step {request.step_id}"] if request.step_id else []
    return f"{model_name} ({', '.join(who)})" if who else model_name
