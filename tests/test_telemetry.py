"""Tracing: run → step → model-call spans with GenAI attributes; no-ops when tracing is off."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from podium import telemetry
from podium.llm.base import Usage


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    sdk = TracerProvider()
    yield sdk
    telemetry.reset()
    sdk.shutdown()


@pytest.fixture
def exporter(provider: TracerProvider) -> InMemorySpanExporter:
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    telemetry.configure(provider)
    return memory


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def test_spans_nest_run_step_model_call(exporter: InMemorySpanExporter) -> None:
    with (
        telemetry.run_span("r1", "report"),
        telemetry.step_span("r1", "draft", "agent", 2, agent="writer"),
        telemetry.model_span(
            "openai:gpt-4o-mini", temperature=0.2, max_tokens=512, run_id="r1", step_id="draft"
        ) as call,
    ):
        call.record(Usage(input_tokens=120, output_tokens=30), "stop", "gpt-4o-mini-2024", 0.0012)
    spans = by_name(exporter)
    run, step, model = spans["run report"], spans["step draft"], spans["chat gpt-4o-mini"]
    assert parent_of(run) is None
    assert parent_of(step) == span_id(run)
    assert parent_of(model) == span_id(step)
    assert run.attributes == {"podium.run_id": "r1", "podium.workflow": "report"}
    assert step.attributes == {
        "podium.run_id": "r1",
        "podium.step_id": "draft",
        "podium.step.kind": "agent",
        "podium.step.attempt": 2,
        "podium.agent": "writer",
    }
    assert model.kind is SpanKind.CLIENT
    assert dict(model.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 512,
        "gen_ai.response.model": "gpt-4o-mini-2024",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30,
        "gen_ai.response.finish_reasons": ("stop",),
        "podium.run_id": "r1",
        "podium.step_id": "draft",
        "podium.cost_usd": 0.0012,
    }


def test_an_exception_marks_the_span_failed_and_propagates(
    exporter: InMemorySpanExporter,
) -> None:
    with pytest.raises(TimeoutError), telemetry.model_span("anthropic:claude-3-5-haiku"):
        raise TimeoutError("no reply in 30s")
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "TimeoutError: no reply in 30s"
    assert (span.attributes or {})["error.type"] == "TimeoutError"
    assert [event.name for event in span.events] == ["exception"]


def test_a_failure_value_marks_the_step_failed(exporter: InMemorySpanExporter) -> None:
    with telemetry.step_span("r1", "fetch", "http") as step:
        step.fail("HTTPError", "503 from upstream")
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "503 from upstream"
    assert (span.attributes or {})["error.type"] == "HTTPError"


def test_a_succeeding_span_is_not_an_error(exporter: InMemorySpanExporter) -> None:
    with telemetry.run_span("r1", "w") as run:
        assert run.recording
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.UNSET


async def test_a_step_task_created_inside_the_run_span_is_its_child(
    exporter: InMemorySpanExporter,
) -> None:
    async def attempt(step_id: str) -> None:
        with telemetry.step_span("r1", step_id, "shell"):
            await asyncio.sleep(0)  # an await inside the span (a task switch), not a wait

    with telemetry.run_span("r1", "w"):
        async with asyncio.TaskGroup() as group:
            group.create_task(attempt("a"))
            group.create_task(attempt("b"))
    spans = by_name(exporter)
    run_id = span_id(spans["run w"])
    assert parent_of(spans["step a"]) == parent_of(spans["step b"]) == run_id


async def test_a_task_created_elsewhere_passes_the_parent_explicitly(
    exporter: InMemorySpanExporter,
) -> None:
    async def attempt(parent: telemetry.SpanHandle) -> None:
        with telemetry.step_span("r1", "a", "shell", parent=parent):
            await asyncio.sleep(0)  # an await inside the span (a task switch), not a wait

    async def by_context(run: telemetry.SpanHandle) -> None:
        with telemetry.step_span("r1", "b", "shell", parent=run.context):
            await asyncio.sleep(0)  # an await inside the span (a task switch), not a wait

    with telemetry.run_span("r1", "w") as run:
        pass
    await asyncio.gather(attempt(run), by_context(run))
    spans = by_name(exporter)
    assert parent_of(spans["step a"]) == parent_of(spans["step b"]) == span_id(spans["run w"])


async def test_cancellation_is_marked_but_not_an_error(exporter: InMemorySpanExporter) -> None:
    inside = asyncio.Event()

    async def attempt() -> None:
        with telemetry.step_span("r1", "slow", "shell"):
            inside.set()
            await asyncio.sleep(60)  # the behaviour under test: a step cancelled while it runs

    task = asyncio.create_task(attempt())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (span,) = exporter.get_finished_spans()
    assert (span.attributes or {})["podium.cancelled"] is True
    assert span.status.status_code is StatusCode.UNSET


def test_a_real_global_provider_is_used_without_configure(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    with telemetry.run_span("r1", "w"):
        pass
    assert [span.name for span in memory.get_finished_spans()] == ["run w"]


def test_without_a_provider_every_span_is_a_shared_no_op() -> None:
    telemetry.reset()
    assert telemetry.tracer() is None
    assert telemetry.model_span("openai:gpt-4o") is telemetry.model_span("openai:gpt-4o")
    with (
        telemetry.run_span("r1", "w") as run,
        telemetry.step_span("r1", "s", "agent", parent=run) as step,
        telemetry.model_span("openai:gpt-4o") as call,
    ):
        call.record(Usage(1, 2), "stop", "gpt-4o", 0.1)
        step.fail("X")
        step.set("k", "v")
    assert (run.context, run.recording) == (None, False)
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_without_the_opentelemetry_api_tracing_is_off(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in sys.modules if name.startswith("opentelemetry")]:
        monkeypatch.setitem(sys.modules, name, None)
    telemetry.reset()
    assert telemetry.tracer() is None
    with telemetry.model_span("openai:gpt-4o") as call:
        call.record(Usage(1, 2))


@pytest.mark.parametrize(
    ("name", "split"),
    [
        ("openai:gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("ollama:llama3:8b", ("ollama", "llama3:8b")),
        ("gpt-4o", ("unknown", "gpt-4o")),
    ],
)
def test_split_model_name(name: str, split: tuple[str, str]) -> None:
    assert telemetry.split_model_name(name) == split


def test_importing_podium_telemetry_does_not_import_opentelemetry() -> None:
    probe = "print(any(m.startswith('opentelemetry') for m in sys.modules))"
    code = f"import sys, podium.telemetry; {probe}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (result.returncode, result.stdout.strip()) == (0, "False")
