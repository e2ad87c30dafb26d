"""The agent step end to end: a catalog agent, a model (scripted or a function), tools, context,
structured output with re-asks, usage recorded as events, live deltas."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from podium.core.state import StepStatus
from podium.errors import SpecError, UsageError
from podium.llm.base import Message, ModelRequest, ModelResponse, ToolCall, Usage
from podium.runtime.engine import Engine
from podium.testing import FunctionModel, register_function_model, unregister_function_model

MCP_SERVER = Path(__file__).resolve().parents[1] / "tools" / "mcp_server.py"

AGENT = """---
name: Researcher
description: Finds things out.
model: {model}
tools: [read_file]
---
You are a careful researcher. Answer briefly.
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "agents").mkdir()
    (tmp_path / "notes.md").write_text("The launch is on Tuesday.")
    return tmp_path


@pytest.fixture
async def engine(workspace: Path) -> AsyncIterator[Engine]:
    async with await Engine.open(workspace / "p.db", workspace=workspace) as eng:
        yield eng


@pytest.fixture
def model(workspace: Path) -> Iterator[list[Any]]:
    """A function model whose replies the test queues; the agent file points at it."""
    replies: list[Any] = []

    def reply(request: ModelRequest) -> Any:
        return replies.pop(0)(request) if callable(replies[0]) else replies.pop(0)

    register_function_model("agent-test", FunctionModel(reply, name="function:agent-test"))
    (workspace / "agents" / "researcher.md").write_text(AGENT.format(model="function:agent-test"))
    yield replies
    unregister_function_model("agent-test")


def agent_step(step_id: str = "ask", **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "agent", "agent": "researcher", "prompt": "When?", **fields}


async def test_tool_call_then_answer_records_usage(engine: Engine, model: list[Any]) -> None:
    seen: list[ModelRequest] = []

    def use_tool(request: ModelRequest) -> ModelResponse:
        seen.append(request)
        call = ToolCall(id="c1", name="read_file", arguments={"path": "notes.md"})
        return ModelResponse(Message("assistant", tool_calls=(call,)), Usage(50, 5))

    def answer(request: ModelRequest) -> ModelResponse:
        seen.append(request)
        return ModelResponse(Message("assistant", "Tuesday"), Usage(80, 3))

    model += [use_tool, answer]
    state = await engine.run({"name": "w", "steps": [agent_step()]})
    assert state.status == "succeeded", state.completed_error
    assert state.steps["ask"].output == "Tuesday"
    assert state.tokens == 138
    assert seen[0].messages[0].content.startswith("You are a careful researcher")
    assert [t.name for t in seen[0].tools] == ["read_file"]
    tool_result = seen[1].messages[-1]
    assert tool_result.role == "tool"
    assert "launch is on Tuesday" in tool_result.content
    events = [e.event for e in await engine.store.read(state.run_id)]
    assert [e.kind for e in events].count("model.called") == 2
    (tool_call,) = [e for e in events if e.kind == "tool.called"]
    assert (tool_call.tool, tool_call.ok, tool_call.error) == ("read_file", True, None)


async def test_dependencies_outputs_are_passed_as_context(engine: Engine, model: list[Any]) -> None:
    prompts: list[str] = []

    def answer(request: ModelRequest) -> str:
        prompts.append(request.messages[-1].content)
        return "ok"

    model.append(answer)
    doc = {
        "name": "w",
        "steps": [
            {"id": "facts", "kind": "shell", "run": "echo the sky is blue"},
            agent_step(needs=["facts"]),
        ],
    }
    state = await engine.run(doc)
    assert state.status == "succeeded", state.completed_error
    assert "### facts\nthe sky is blue" in prompts[0]


async def test_structured_output_is_reasked_until_valid(engine: Engine, model: list[Any]) -> None:
    schema = {"type": "object", "required": ["day"], "properties": {"day": {"type": "string"}}}
    model += ["not json at all", {"when": "Tuesday"}, {"day": "Tuesday"}]
    state = await engine.run({"name": "w", "steps": [agent_step(output=schema, max_reasks=2)]})
    assert state.status == "succeeded", state.completed_error
    assert state.steps["ask"].output == {"day": "Tuesday"}


async def test_invalid_output_after_all_reasks_fails_the_step(
    engine: Engine, model: list[Any]
) -> None:
    model += ["nope", "still nope"]
    state = await engine.run({"name": "w", "steps": [agent_step(output="json", max_reasks=1)]})
    assert state.status == "failed"
    assert "no valid answer after 1 re-asks" in (state.steps["ask"].error or "")


async def test_unknown_agent_is_a_validation_error_listing_candidates(
    engine: Engine, model: list[Any]
) -> None:
    with pytest.raises(SpecError) as info:
        await engine.submit({"name": "w", "steps": [agent_step(agent="writer")]})
    text = str(info.value)
    assert "steps[0].agent" in text
    assert "Researcher" in text


async def test_agent_name_matches_case_insensitively(engine: Engine, model: list[Any]) -> None:
    model.append("fine")
    state = await engine.run({"name": "w", "steps": [agent_step(agent="RESEARCHER")]})
    assert state.status == "succeeded", state.completed_error


async def test_scripted_model_runs_offline(engine: Engine, workspace: Path) -> None:
    script = workspace / "script.yaml"
    script.write_text(
        "agents:\n  researcher:\n    - content: It is on Tuesday.\n"
        "      usage: {input_tokens: 12, output_tokens: 6}\n"
    )
    (workspace / "agents" / "researcher.md").write_text(AGENT.format(model=f"scripted:{script}"))
    run_id = await engine.submit({"name": "w", "steps": [agent_step()]}, start=False)
    deltas = engine.bus.subscribe_deltas(run_id)
    await engine.resume(run_id)
    state = await engine.wait(run_id)
    assert state.status == "succeeded", state.completed_error
    assert state.steps["ask"].output == "It is on Tuesday."
    assert state.tokens == 18
    streamed = ""
    while not deltas.empty():
        streamed += deltas.get_nowait()[1]
    assert streamed == "It is on Tuesday."


async def test_retryable_model_errors_use_the_retry_policy(engine: Engine, workspace: Path) -> None:
    script = workspace / "script.yaml"
    script.write_text(
        "agents:\n  researcher:\n    - error: {status: 429, message: slow down}\n"
        "    - content: done\n"
    )
    (workspace / "agents" / "researcher.md").write_text(AGENT.format(model=f"scripted:{script}"))
    retry = {"max_attempts": 2, "initial_delay_seconds": 0.01}
    state = await engine.run({"name": "w", "steps": [agent_step(retry=retry)]})
    assert state.status == "succeeded", state.completed_error
    assert state.steps["ask"].attempts == 2


async def test_tool_loop_is_bounded(engine: Engine, model: list[Any]) -> None:
    call = ToolCall(id="c", name="read_file", arguments={"path": "notes.md"})
    model += [[call], [call]]
    state = await engine.run({"name": "w", "steps": [agent_step(max_turns=2)]})
    assert state.status == "failed"
    step = state.steps["ask"]
    assert step.status is StepStatus.FAILED
    assert "used all 2 turns" in (step.error or "")


def test_context_block_says_what_was_cut() -> None:
    from podium.spec.model import ContextLimits
    from podium.steps._context import context_block

    limits = ContextLimits(max_chars_per_dependency=100, max_dependencies=2, max_total_chars=150)
    text = context_block({"a": "x" * 500, "b": {"k": 1}, "c": "z"}, "auto", limits)
    assert "[cut: 400 more characters not shown]" in text
    assert '"k": 1' in text
    assert "1 more dependencies omitted to stay within the context limit: c" in text
    assert context_block({"a": "x"}, "none", limits) == ""


async def test_token_budget_stops_the_run(engine: Engine, model: list[Any]) -> None:
    model.append(lambda request: ModelResponse(Message("assistant", "long answer"), Usage(150, 80)))
    doc = {
        "name": "w",
        "budget": {"tokens": 200},
        "steps": [
            agent_step(),
            {"id": "slow", "kind": "shell", "run": "sleep 30"},
            {"id": "after", "kind": "shell", "run": "true", "needs": ["ask"]},
        ],
    }
    state = await engine.run(doc)
    assert state.status == "failed"
    assert "budget tokens exceeded" in (state.completed_error or "")
    assert state.steps["slow"].status is StepStatus.CANCELLED
    assert state.steps["slow"].reason == "budget"
    events = [e.event for e in await engine.store.read(state.run_id)]
    exceeded = [e for e in events if e.kind == "budget.exceeded"]
    assert len(exceeded) == 1
    assert exceeded[0].figure == 230


async def test_an_agent_calls_a_tool_of_a_real_mcp_server(workspace: Path) -> None:
    seen: list[ModelRequest] = []

    def reply(request: ModelRequest) -> Any:
        seen.append(request)
        if len(seen) == 1:
            return [ToolCall(id="c1", name="calc__add", arguments={"a": 2, "b": 40})]
        return f"the sum is {request.messages[-1].content}"

    register_function_model("mcp-test", FunctionModel(reply, name="function:mcp-test"))
    agent = "---\nname: counter\nmodel: function:mcp-test\ntools: [mcp:calc]\n---\nAdd.\n"
    (workspace / "agents" / "counter.md").write_text(agent)
    servers = {"calc": {"command": sys.executable, "args": [str(MCP_SERVER)]}}
    try:
        async with await Engine.open(
            workspace / "m.db", workspace=workspace, mcp_servers=servers
        ) as eng:
            state = await eng.run({"name": "w", "steps": [agent_step(agent="counter")]})
    finally:
        unregister_function_model("mcp-test")
    assert state.status == "succeeded", state.completed_error
    assert state.steps["ask"].output == "the sum is 42"
    assert "calc__add" in [tool.name for tool in seen[0].tools]


async def test_a_missing_api_key_is_refused_at_submit_saying_what_to_set(
    engine: Engine, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    (workspace / "agents" / "researcher.md").write_text(AGENT.format(model="openai:gpt-4o-mini"))
    with pytest.raises(UsageError, match=r"step 'ask' \(agent 'Researcher'\).*OPENAI_API_KEY"):
        await engine.submit({"name": "w", "steps": [agent_step(retry=3)]})
    assert await engine.store.list_runs() == []  # no run that could only fail


async def test_an_unreachable_base_url_is_retried_then_named(
    engine: Engine, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    (workspace / "agents" / "researcher.md").write_text(AGENT.format(model="openai:local-model"))
    retry = {"max_attempts": 2, "initial_delay_seconds": 0.01}
    state = await engine.run({"name": "w", "steps": [agent_step(retry=retry)]})
    step = state.steps["ask"]
    assert state.status == "failed"
    assert step.attempts == 2  # connection errors are retryable
    assert f"127.0.0.1:{port}" in (step.error or "")
    assert step.error_type == "connection"


async def test_a_built_workflow_is_checked_against_the_catalog_too(
    engine: Engine, model: list[Any]
) -> None:
    from podium.spec.validate import validate_workflow

    built = validate_workflow({"name": "w", "steps": [agent_step(agent="nobody")]})
    with pytest.raises(SpecError) as info:
        await engine.submit(built)
    assert "steps[0].agent" in str(info.value)
    assert await engine.store.list_runs() == []


async def test_agent_and_step_options_reach_the_model(
    engine: Engine, model: list[Any], workspace: Path
) -> None:
    agent = AGENT.format(model="function:agent-test").replace(
        "tools: [read_file]", "tools: [read_file]\ntemperature: 0.2\nseed: 7\nstop: END"
    )
    (workspace / "agents" / "researcher.md").write_text(agent)
    seen: list[ModelRequest] = []

    def answer(request: ModelRequest) -> str:
        seen.append(request)
        return "ok"

    model.append(answer)
    options = {"temperature": 0.9, "max_tokens": 50, "timeout": "30s", "stream": False}
    state = await engine.run({"name": "w", "steps": [agent_step(options=options)]})
    assert state.status == "succeeded", state.completed_error
    sent = seen[0].options
    assert (sent.temperature, sent.seed, sent.max_tokens) == (0.9, 7, 50)  # the step wins
    assert (sent.stop, sent.timeout_seconds, sent.stream) == (("END",), 30.0, False)


async def test_a_forced_tool_is_forced_on_the_first_turn_only(
    engine: Engine, model: list[Any]
) -> None:
    seen: list[ModelRequest] = []

    def use_tool(request: ModelRequest) -> ModelResponse:
        seen.append(request)
        call = ToolCall(id="c1", name="read_file", arguments={"path": "notes.md"})
        return ModelResponse(Message("assistant", tool_calls=(call,)), Usage(50, 5))

    def answer(request: ModelRequest) -> str:
        seen.append(request)
        return "Tuesday"

    model += [use_tool, answer]
    step = agent_step(options={"tool_choice": "read_file"})
    state = await engine.run({"name": "w", "steps": [step]})
    assert state.status == "succeeded", state.completed_error
    assert [r.options.tool_choice for r in seen] == ["read_file", "auto"]
