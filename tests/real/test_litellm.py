"""Podium against LiteLLM's proxy (`litellm --config`, from .venv-litellm) and its mock models,
through the real code: a `podium.toml` names the proxy as an `openai` provider whose key variable
holds the proxy's master key, and workflows run through the `podium` CLI or the `Engine`.

The proxy is real (its routing, auth, request checks, replies, SSE streams and error mapping);
the models are LiteLLM's mocks, so every answer is fixed in tests/real/litellm_proxy.py, which
also says how the one multi-turn mock (`tool-user`) works: a proxy pre-call hook picks a tool
call or the final answer depending on whether the tool's result is in the conversation. That
hook logs each request the proxy receives, so the tests check what Podium sent as well as what
it made of the replies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from podium.core.state import StepStatus

from . import runs
from .conftest import Figure
from .litellm_proxy import (
    ANSWER,
    DRAFT,
    NOTES,
    NOTES_FILE,
    PLAN,
    RESEARCH,
    LiteLLMProxy,
)
from .runs import calls, seconds

pytestmark = pytest.mark.real
PROVIDER = "litellm"
KEY_ENV = "PODIUM_LITELLM_KEY"
OPTIONS = '{ temperature = 0.0, max_tokens = 200, timeout = "30s" }'
QUESTION = "What is the capital of France?"
COLOURS: dict[str, Any] = {
    "type": "object",
    "properties": {"colour": {"enum": ["red", "green", "blue"]}},
    "required": ["colour"],
    "additionalProperties": False,
}
# agent name -> (the mock model it uses, its tools)
AGENTS: dict[str, tuple[str, list[str]]] = {
    "helper": ("plain", []),
    "reader": ("tool-user", ["read_file"]),
    "judge": ("json", []),
    "planner": ("planner", []),
    "researcher": ("researcher", []),
    "writer": ("writer", []),
    "limited": ("rate-limited", []),
    "overloaded": ("overloaded", []),
}


@pytest.fixture
def proxy(litellm_proxy: LiteLLMProxy, monkeypatch: pytest.MonkeyPatch) -> LiteLLMProxy:
    """The session's proxy with its request log cleared and its key in the provider's variable."""
    litellm_proxy.forget()
    monkeypatch.setenv(KEY_ENV, litellm_proxy.key)
    return litellm_proxy


def project(folder: Path, proxy: LiteLLMProxy) -> Path:
    """podium.toml naming the proxy as provider `litellm`, and one agent per mock model."""
    agents = folder / "agents"
    agents.mkdir(exist_ok=True)
    for name, (model, tools) in AGENTS.items():
        listed = f"tools: [{', '.join(tools)}]\n" if tools else ""
        agents.joinpath(f"{name}.md").write_text(
            f"---\nname: {name}\ndescription: The {name} (LiteLLM mock `{model}`).\n"
            f"model: {PROVIDER}:{model}\n{listed}---\nYou are the {name}. Answer briefly.\n"
        )
    config = folder / "podium.toml"
    config.write_text(
        f'model = "{PROVIDER}:plain"\nagents = "agents"\n\n'
        f'[providers.{PROVIDER}]\ntype = "openai"\nbase_url = "{proxy.base_url}"\n'
        f'api_key_env = "{KEY_ENV}"\noptions = {OPTIONS}\n'
    )
    return config


def ask(agent: str, step_id: str = "ask", prompt: str = QUESTION, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "agent", "agent": agent, "prompt": prompt, **fields}


def figure(test: str, called: list[dict[str, Any]], outcome: str, mode: str = "-") -> Figure:
    return runs.figure("litellm", test, called, outcome, mode)


async def run(folder: Path, workflow: dict[str, Any]) -> runs.Ran:
    return await runs.run(folder, workflow, (f"{PROVIDER}:{m}" for m, _ in AGENTS.values()))


def test_the_cli_runs_an_agent_step_against_litellm(
    proxy: LiteLLMProxy, tmp_path: Path, figures: list[Figure]
) -> None:
    project(tmp_path, proxy)
    (tmp_path / "wf.yaml").write_text(json.dumps({"name": "hello", "steps": [ask("helper")]}))
    podium = [sys.executable, "-m", "podium.cli.app"]
    db = ["--db", str(tmp_path / "podium.db")]

    def cli(*args: str) -> str:
        done = subprocess.run(
            [*podium, *args, *db], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"podium {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    cli("run", "wf.yaml", "--run-id", "r1")
    shown = json.loads(cli("show", "r1", "--json"))
    step = next(s for s in shown["steps"] if s["id"] == "ask")
    assert step["output"] == ANSWER
    listed = cli("events", "r1", "--json").splitlines()
    called = calls([json.loads(line) for line in listed])
    assert len(called) == 1
    assert called[0]["model"] == "openai:plain"
    assert called[0]["finish_reason"] == "stop"
    assert called[0]["input_tokens"] > 0
    assert called[0]["output_tokens"] > 0
    assert not called[0]["estimated"]
    [sent] = proxy.requests("plain")
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert QUESTION in sent["messages"][-1]["content"]
    figures.append(figure("agent step (podium run)", called, "succeeded"))


async def test_an_agent_step_streams_deltas_and_counts_usage(
    proxy: LiteLLMProxy, tmp_path: Path, figures: list[Figure]
) -> None:
    project(tmp_path, proxy)
    state, events, deltas = await run(tmp_path, {"name": "stream", "steps": [ask("helper")]})
    assert state.status == "succeeded", state.completed_error
    answer = state.steps["ask"].output
    assert len(deltas) > 1, f"expected the answer in several fragments, got {deltas!r}"
    assert "".join(deltas) == answer
    assert answer == ANSWER
    called = calls(events)
    assert [c["finish_reason"] for c in called] == ["stop"]
    assert called[0]["input_tokens"] > 0
    assert called[0]["output_tokens"] > 0
    assert not called[0]["estimated"], "LiteLLM sends usage in the stream when asked"
    [sent] = proxy.requests("plain")
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    figures.append(figure(f"streaming ({len(deltas)} deltas)", called, "succeeded"))
    print(f"\nLiteLLM streamed {deltas!r}")


async def test_a_tool_call_round_trip_runs_the_tool_and_sends_its_result_back(
    proxy: LiteLLMProxy, tmp_path: Path, figures: list[Figure]
) -> None:
    """Turn 1: the mock asks for `read_file` on notes.txt (the hook's tool-call reply, streamed
    as one chunk); Podium runs its built-in tool in the workspace and sends the file's text back
    as a `tool` message; turn 2: the hook answers with that text."""
    project(tmp_path, proxy)
    (tmp_path / NOTES_FILE).write_text(NOTES)
    prompt = "What is on my shopping list in notes.txt?"
    state, events, _ = await run(
        tmp_path, {"name": "tools", "steps": [ask("reader", prompt=prompt, max_turns=4)]}
    )
    assert state.status == "succeeded", state.completed_error
    assert state.steps["ask"].output == f"The notes say: {NOTES}"
    called = calls(events)
    assert [c["finish_reason"] for c in called] == ["tool_calls", "stop"]
    [asked] = called[0]["reply"]["tool_calls"]
    assert asked["name"] == "read_file"
    assert asked["arguments"] == {"path": NOTES_FILE}
    tooled = [e for e in events if e["kind"] == "tool.called"]
    assert len(tooled) == 1, tooled
    first, second = proxy.requests("tool-user")
    assert first["tools"] == ["read_file"]
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "tool"]
    assistant, result = second["messages"][2:]
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_notes_1"]
    assert result["tool_call_id"] == "call_notes_1"
    assert NOTES in result["content"]
    figures.append(figure("tool round trip (read_file)", called, "succeeded"))


async def test_structured_output_is_parsed_from_a_mocked_json_reply(
    proxy: LiteLLMProxy, tmp_path: Path, figures: list[Figure]
) -> None:
    """`structured_output = "auto"` asks with `json_schema` first; LiteLLM passes the
    response_format to its mock (which ignores it) and the fixed JSON reply fits the schema."""
    project(tmp_path, proxy)
    prompt = "Which colour is the sky on a clear day? Answer with JSON."
    workflow = {"name": "json", "steps": [ask("judge", prompt=prompt, output=COLOURS)]}
    state, events, _ = await run(tmp_path, workflow)
    assert state.status == "succeeded", state.completed_error
    assert state.steps["ask"].output == {"colour": "blue"}
    [sent] = proxy.requests("json")
    mode = sent["response_format"]["type"]
    assert mode == "json_schema", sent["response_format"]
    schema = sent["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["colour"] == COLOURS["properties"]["colour"]
    figures.append(figure("structured output (enum schema)", calls(events), "succeeded", mode))


async def test_a_plan_step_runs_the_plan_a_mock_planner_returns(
    proxy: LiteLLMProxy, tmp_path: Path, figures: list[Figure]
) -> None:
    """The planner agent's model returns PLAN (two steps, `write` needing `research`); Podium
    checks it, expands it into `plan.research` and `plan.write`, and runs them on their own mock
    models, the writer getting the researcher's output as context."""
    project(tmp_path, proxy)
    plan = {
        "id": "plan",
        "kind": "plan",
        "goal": "Write one sentence about Paris.",
        "planner": "planner",
        "agents": ["researcher", "writer"],
    }
    state, events, _ = await run(tmp_path, {"name": "planned", "steps": [plan]})
    assert state.status == "succeeded", state.completed_error
    assert state.steps["plan.research"].output == RESEARCH
    assert state.steps["plan.write"].output == DRAFT
    assert state.steps["plan.write"].status == StepStatus.SUCCEEDED
    [planned] = proxy.requests("planner")
    assert "Write one sentence about Paris." in planned["messages"][-1]["content"]
    mode = planned["response_format"]["type"]  # the plan is asked for against PLAN_SCHEMA
    assert mode == "json_schema", planned["response_format"]
    [written] = proxy.requests("writer")
    assert RESEARCH in json.dumps(written["messages"]), "the writer gets the research as context"
    ids = [s["id"] for s in PLAN["steps"]]
    assert len(proxy.requests("researcher")) == 1
    called = calls(events)
    assert sorted(c["agent"] for c in called) == ["planner", "researcher", "writer"]
    figures.append(figure(f"plan step ({len(ids)} children)", called, "succeeded", mode))


async def test_a_rate_limited_model_is_retried_then_fails_the_step(
    proxy: LiteLLMProxy, tmp_path: Path, figures: list[Figure]
) -> None:
    """`mock_response: litellm.RateLimitError` makes the proxy answer HTTP 429: Podium treats it
    as retryable, so the step's retry policy makes a second attempt, then the step fails."""
    project(tmp_path, proxy)
    retry = {"max_attempts": 2, "initial_delay_seconds": 0.1}
    workflow = {"name": "limited", "steps": [ask("limited", retry=retry)]}
    state, events, _ = await run(tmp_path, workflow)
    step = state.steps["ask"]
    assert state.status == "failed"
    assert step.status == StepStatus.FAILED
    assert step.attempts == 2
    assert "HTTP 429" in (step.error or ""), step.error
    assert "rate limited" in (step.error or ""), step.error
    assert step.error_type == "rate_limit", step.error_type
    assert len(proxy.requests("rate-limited")) == 2
    assert calls(events) == []
    row = figure("HTTP 429 (RateLimitError), 2 attempts", [], "step failed: 429")
    figures.append(Figure(**{**row.__dict__, "latency_seconds": seconds(step)}))


async def test_an_overloaded_server_is_a_retryable_server_error(
    proxy: LiteLLMProxy, tmp_path: Path, figures: list[Figure]
) -> None:
    """LiteLLM's mid-stream error mock reaches the client as HTTP 529 (see litellm_proxy.py):
    a 5xx, so Podium retries it as a server error and fails the step after the last attempt,
    with no reply recorded as an answer."""
    project(tmp_path, proxy)
    retry = {"max_attempts": 2, "initial_delay_seconds": 0.1}
    workflow = {"name": "overloaded", "steps": [ask("overloaded", retry=retry)]}
    state, events, deltas = await run(tmp_path, workflow)
    step = state.steps["ask"]
    assert state.status == "failed"
    assert step.status == StepStatus.FAILED
    assert step.attempts == 2
    assert step.output is None
    assert "HTTP 529 server error" in (step.error or ""), step.error
    assert step.error_type == "server", step.error_type
    assert [r["stream"] for r in proxy.requests("overloaded")] == [True, True]
    assert calls(events) == []
    assert deltas == []
    row = figure("HTTP 529 (mock_streaming_error), 2 attempts", [], "step failed: 529")
    figures.append(Figure(**{**row.__dict__, "latency_seconds": seconds(step)}))
