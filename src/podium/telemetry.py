"""OpenTelemetry tracing: spans run → step → model call, with the GenAI semantic conventions on
model calls. Off unless a tracer provider is set (`configure(provider)` or the global one): then
every call here returns a shared no-op context manager, and opentelemetry is never imported.

Spans nest through the current context (contextvars). An asyncio task copies the context when it
is created, so a step task created inside `with run_span(...)` is the run span's child; a task
created elsewhere passes the parent explicitly: `step_span(..., parent=run.context)` (or the
`SpanHandle` itself).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from podium.core.redact import PATTERNS_ONLY

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, SpanKind, Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue

    from podium.llm.base import Usage

__all__ = [
    "ModelCall",
    "SpanHandle",
    "configure",
    "model_span",
    "reset",
    "run_span",
    "split_model_name",
    "step_span",
    "tracer",
]

INSTRUMENTATION_NAME = "podium"


class SpanHandle:
    """The span a `with` block opened. `context` carries it to tasks created elsewhere; every
    method is a no-op when tracing is off (then `context` is None)."""

    __slots__ = ("_span", "context")

    def __init__(self, span: Span | None = None, context: Context | None = None) -> None:
        self._span = span
        self.context = context

    @property
    def recording(self) -> bool:
        return self._span is not None and self._span.is_recording()

    def set(self, key: str, value: AttributeValue | None) -> None:
        if self._span is not None and value is not None:
            self._span.set_attribute(key, value)

    def fail(self, error_type: str, message: str = "") -> None:
        """Mark the span failed without an exception (a step's failure is a value, not a raise)."""
        if self._span is not None:
            from opentelemetry.trace import Status, StatusCode

            self._span.set_attribute("error.type", error_type)
            self._span.set_status(Status(StatusCode.ERROR, PATTERNS_ONLY.text(message) or None))


class ModelCall(SpanHandle):
    """A model-call span; `record` adds what the response reports."""

    __slots__ = ()

    def record(
        self,
        usage: Usage | None = None,
        finish_reason: str | None = None,
        response_model: str | None = None,
        cost_usd: float | None = None,
    ) -> None:
        if self._span is None:
            return
        if usage is not None:
            self.set("gen_ai.usage.input_tokens", usage.input_tokens)
            self.set("gen_ai.usage.output_tokens", usage.output_tokens)
        if finish_reason is not None:
            self.set("gen_ai.response.finish_reasons", (finish_reason,))
        self.set("gen_ai.response.model", response_model)
        self.set("podium.cost_usd", cost_usd)


_H = TypeVar("_H", bound=SpanHandle)
_NOOP_SPAN = nullcontext(SpanHandle())
_NOOP_MODEL_CALL = nullcontext(ModelCall())


# Configuration ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Settings:
    provider: TracerProvider | None = None
    cached: tuple[TracerProvider, Tracer] | None = None


_settings = _Settings()


def configure(tracer_provider: TracerProvider) -> None:
    """Send Podium's spans to this provider instead of the global one (tests, embedding apps)."""
    _settings.provider = tracer_provider
    _settings.cached = None


def reset() -> None:
    """Forget `configure`: fall back to the global provider (tracing is off if there is none)."""
    _settings.provider = None
    _settings.cached = None
    _api_available.cache_clear()


def tracer() -> Tracer | None:
    """The tracer Podium's spans go to, or None when tracing is off."""
    provider = _settings.provider or _global_provider()
    if provider is None:
        return None
    if _settings.cached is None or _settings.cached[0] is not provider:
        _settings.cached = (provider, provider.get_tracer(INSTRUMENTATION_NAME))
    return _settings.cached[1]


@functools.cache
def _api_available() -> bool:
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        return False
    return True


def _global_provider() -> TracerProvider | None:
    if not _api_available():
        return None
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return provider


# Spans --------------------------------------------------------------------------------------


def run_span(
    run_id: str, workflow: str, *, parent: Context | SpanHandle | None = None
) -> AbstractContextManager[SpanHandle]:
    """The span of one run (one drive of it by this process)."""
    active = tracer()
    if active is None:
        return _NOOP_SPAN
    attributes = {"podium.run_id": run_id, "podium.workflow": workflow}
    return _span(active, f"run {workflow}", attributes, parent, SpanHandle)


def step_span(
    run_id: str,
    step_id: str,
    kind: str,
    attempt: int = 1,
    *,
    agent: str | None = None,
    parent: Context | SpanHandle | None = None,
) -> AbstractContextManager[SpanHandle]:
    """The span of one attempt of one step; a child of the run span (current or `parent`)."""
    active = tracer()
    if active is None:
        return _NOOP_SPAN
    attributes = _present(
        {
            "podium.run_id": run_id,
            "podium.step_id": step_id,
            "podium.step.kind": kind,
            "podium.step.attempt": attempt,
            "podium.agent": agent,
        }
    )
    return _span(active, f"step {step_id}", attributes, parent, SpanHandle)


def model_span(
    model_name: str,
    *,
    temperature: float | None = None,
    max_tokens: int | None = None,
    run_id: str | None = None,
    step_id: str | None = None,
    agent: str | None = None,
    operation: str = "chat",
    parent: Context | SpanHandle | None = None,
) -> AbstractContextManager[ModelCall]:
    """A model call, named `"{operation} {model}"`, for the `provider:model` string given."""
    active = tracer()
    if active is None:
        return _NOOP_MODEL_CALL
    provider, model = split_model_name(model_name)
    attributes = _present(
        {
            "gen_ai.operation.name": operation,
            "gen_ai.system": provider,
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "gen_ai.request.temperature": temperature,
            "gen_ai.request.max_tokens": max_tokens,
            "podium.run_id": run_id,
            "podium.step_id": step_id,
            "podium.agent": agent,
        }
    )
    return _span(active, f"{operation} {model}", attributes, parent, ModelCall, client=True)


def split_model_name(model_name: str) -> tuple[str, str]:
    """`"openai:gpt-4o-mini"` → `("openai", "gpt-4o-mini")`; no provider prefix → "unknown"."""
    provider, sep, model = model_name.partition(":")
    return (provider, model) if sep and provider else ("unknown", model_name.lstrip(":"))


def _present(
    attributes: Mapping[str, AttributeValue | None],
) -> dict[str, AttributeValue]:
    return {key: value for key, value in attributes.items() if value is not None}


@contextmanager
def _span(
    active: Tracer,
    name: str,
    attributes: Mapping[str, AttributeValue],
    parent: Context | SpanHandle | None,
    handle: type[_H],
    *,
    client: bool = False,
) -> Iterator[_H]:
    from opentelemetry import context

    with active.start_as_current_span(
        name,
        context=parent.context if isinstance(parent, SpanHandle) else parent,
        kind=_kind(client),
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield handle(span, context.get_current())
        except asyncio.CancelledError:
            span.set_attribute("podium.cancelled", True)
            raise
        except Exception as exc:
            _record_error(span, exc)
            raise


def _kind(client: bool) -> SpanKind:
    from opentelemetry.trace import SpanKind

    return SpanKind.CLIENT if client else SpanKind.INTERNAL


def _record_error(span: Span, exc: Exception) -> None:
    from opentelemetry.trace import Status, StatusCode

    cls = type(exc)
    error_type = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    message = PATTERNS_ONLY.text(f"{cls.__name__}: {exc}")  # a key format is never exported
    span.add_event("exception", {"exception.type": error_type, "exception.message": message})
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, message))
