"""Circuit breakers around agent steps, end to end: failures open a breaker per agent and per
model, open breakers route work to fallbacks (recorded as events), a trial call after the cooldown
closes them again; and model calls as OpenTelemetry spans."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from podium import telemetry
from podium.core.events import AgentRouted, BreakerChanged
from podium.errors import ModelError
from podium.llm.base import ModelRequest
from podium.runtime.engine import Engine
from podium.testing import FunctionModel, register_function_model, unregister_function_model

FAST = {"failure_threshold": 2, "cooldown_seconds": 0.5}  # b must route before it ends


class Flaky:
    """A model function that raises the errors queued in `failures`, then answers."""

    def __init__(self) -> None:
        self.failures: list[ModelError] = []
        self.calls = 0

    def __call__(self, request: ModelRequest) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "from primary"


def http_error(status: int) -> ModelError:
    retryable = status == 429 or status >= 500
    return ModelError(f"HTTP {status}", retryable=retryable, provider="function", status=status)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "agents").mkdir()
    return tmp_path


@pytest.fixture
def flaky(workspace: Path) -> Iterator[Flaky]:
    """`primary` (function:flaky, falls back to `backup`) and `backup` (function:steady)."""
    fn = Flaky()
    register_function_model("flaky", FunctionModel(fn, name="function:flaky"))
    register_function_model(
        "steady", FunctionModel(lambda r: "from backup", name="function:steady")
    )
    write_agent(workspace, "primary", "function:flaky", fallbacks=["backup"])
    write_agent(workspace, "backup", "function:steady")
    yield fn
    unregister_function_model("flaky")
    unregister_function_model("steady")


def write_agent(workspace: Path, name: str, model: str, fallbacks: Sequence[str] = ()) -> None:
    more = f"fallbacks: [{', '.join(fallbacks)}]\n" if fallbacks else ""
    text = f"---\nname: {name}\nmodel: {model}\n{more}---\nYou are {name}.\n"
    (workspace / "agents" / f"{name}.md").write_text(text)


async def open_engine(workspace: Path, **policy: Any) -> Engine:
    return await Engine.open(workspace / "p.db", workspace=workspace, breaker=policy)


def ask(step_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "agent", "agent": "primary", "prompt": "Go.", **fields}


async def breaker_events(engine: Engine, run_id: str) -> list[BreakerChanged | AgentRouted]:
    kinds = (BreakerChanged, AgentRouted)
    return [e.event for e in await engine.store.read(run_id) if isinstance(e.event, kinds)]


def summary(event: BreakerChanged | AgentRouted) -> tuple[str | None, ...]:
    if isinstance(event, AgentRouted):
        return ("routed", event.step_id, event.requested, event.selected)
    return ("breaker", event.step_id, event.key, event.from_status, event.to_status)


async def test_open_breaker_routes_to_fallback_then_half_open_trial_closes_it(
    workspace: Path, flaky: Flaky
) -> None:
    flaky.failures += [http_error(503), http_error(503)]
    doc = {
        "name": "w",
        "steps": [
            ask("a", retry={"max_attempts": 2, "initial_delay_seconds": 0}, allow_failure=True),
            ask("b", needs=["a"]),
            {"id": "pause", "kind": "shell", "run": "sleep 0.6", "needs": ["b"]},
            ask("c", needs=["pause"]),
        ],
    }
    async with await open_engine(workspace, **FAST) as engine:
        state = await engine.run(doc)
        events = await breaker_events(engine, state.run_id)
    assert state.status == "succeeded", state.completed_error
    assert state.steps["a"].attempts == 2
    assert state.steps["a"].error_type == "model"
    assert state.steps["b"].output == "from backup"
    assert state.steps["b"].meta == {"agent": "backup", "model": "function:steady", "turns": 1}
    assert state.steps["c"].output == "from primary"
    assert flaky.calls == 3
    assert [summary(e) for e in events] == [
        ("breaker", "a", "primary", "closed", "open"),
        ("breaker", "a", "function:flaky", "closed", "open"),
        ("routed", "b", "primary", "backup"),
        ("breaker", "c", "primary", "open", "half_open"),
        ("breaker", "c", "function:flaky", "open", "half_open"),
        ("breaker", "c", "primary", "half_open", "closed"),
        ("breaker", "c", "function:flaky", "half_open", "closed"),
    ]
    routed, opened = events[2], events[0]
    assert isinstance(routed, AgentRouted)
    assert routed.reason == "breaker primary is open; breaker function:flaky is open"
    assert isinstance(opened, BreakerChanged)
    assert opened.reason == "2 consecutive failures"


async def test_every_candidate_open_fails_the_step_retryably_naming_the_breakers(
    workspace: Path, flaky: Flaky
) -> None:
    write_agent(workspace, "backup", "function:flaky")  # the fallback shares the broken model
    flaky.failures.append(http_error(502))
    async with await open_engine(workspace, failure_threshold=1, cooldown_seconds=60) as engine:
        first = await engine.run({"name": "w", "steps": [ask("a")]})
        second = await engine.run({"name": "w", "steps": [ask("b")]})
        events = await breaker_events(engine, second.run_id)
    assert first.steps["a"].error_type == "model"
    step = second.steps["b"]
    assert step.error_type == "breaker_open"
    error = step.error or ""
    assert "primary (for primary) is open until" in error
    assert "function:flaky (for backup) is open until" in error
    assert "retry after the cooldown" in error
    assert flaky.calls == 1
    assert events == []  # nothing changed: every breaker stayed open


async def test_non_retryable_errors_do_not_trip_the_breaker(workspace: Path, flaky: Flaky) -> None:
    flaky.failures += [http_error(400), http_error(400)]
    async with await open_engine(workspace, failure_threshold=1) as engine:
        doc = {"name": "w", "steps": [ask("a", allow_failure=True), ask("b", needs=["a"])]}
        state = await engine.run(doc)
        events = await breaker_events(engine, state.run_id)
        breakers = engine.services.breakers
    assert state.steps["a"].status == "failed"
    assert state.steps["b"].status == "failed"
    assert flaky.calls == 2  # the second step still went to primary
    assert events == []
    assert {key: b.status for key, b in breakers.items()} == {
        "primary": "closed",
        "function:flaky": "closed",
    }


async def test_a_released_half_open_slot_lets_the_next_trial_through(
    workspace: Path, flaky: Flaky
) -> None:
    """A trial call that ends in a bad request says nothing of health: it frees its slot."""
    flaky.failures += [http_error(503), http_error(400)]
    doc = {
        "name": "w",
        "steps": [
            ask("a", allow_failure=True),
            {"id": "pause", "kind": "shell", "run": "sleep 0.3", "needs": ["a"]},
            ask("b", needs=["pause"], allow_failure=True),
            ask("c", needs=["b"]),
        ],
    }
    async with await open_engine(workspace, failure_threshold=1, cooldown_seconds=0.2) as engine:
        state = await engine.run(doc)
        events = await breaker_events(engine, state.run_id)
    assert state.steps["b"].error_type == "model"
    assert state.steps["c"].output == "from primary"
    primary = [e for e in events if isinstance(e, BreakerChanged) and e.key == "primary"]
    assert [summary(e)[1:] for e in primary] == [
        ("a", "primary", "closed", "open"),
        ("b", "primary", "open", "half_open"),
        ("c", "primary", "half_open", "closed"),
    ]


async def test_model_calls_are_spans_with_usage_when_tracing_is_configured(
    workspace: Path, flaky: Flaky
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.configure(provider)
    try:
        async with await open_engine(workspace) as engine:
            state = await engine.run({"name": "w", "steps": [ask("a", agent="backup")]})
    finally:
        telemetry.reset()
    assert state.status == "succeeded", state.completed_error
    spans = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    assert [s.name for s in spans] == ["chat steady"]
    attributes = dict(spans[0].attributes or {})
    assert attributes["gen_ai.system"] == "function"
    assert attributes["gen_ai.request.model"] == "steady"
    assert attributes["gen_ai.response.model"] == "function:steady"
    assert attributes["gen_ai.usage.input_tokens"] > 0  # type: ignore[operator]
    assert attributes["gen_ai.usage.output_tokens"] > 0  # type: ignore[operator]
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["podium.step_id"] == "a"
    assert attributes["podium.run_id"] == state.run_id
    assert attributes["podium.agent"] == "backup"
    assert attributes["podium.cost_usd"] == 0.0
    by_name = {s.name: s for s in exporter.get_finished_spans()}
    run_span, step_span = by_name["run w"], by_name["step a"]
    assert step_span.parent is not None
    assert step_span.parent.span_id == run_span.context.span_id  # run -> step
    assert spans[0].parent is not None
    assert spans[0].parent.span_id == step_span.context.span_id  # step -> model call
