"""Podium against llama.cpp's server (llama-cpp-python) and SmolLM2-135M-Instruct, through the
real code: a `podium.toml` names the server as an `openai` provider, and workflows run through
the `podium` CLI or the `Engine`. The tests ask only what a 135M model does reliably: a short
plain answer, streamed; usage counted by the server; a reply cut off by a tiny `max_tokens`
(which must fail the step, not pass for an answer); and JSON constrained by a schema, which
llama.cpp enforces with a grammar, so its shape does not depend on the model's judgement."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from podium.config import load_config
from podium.core.state import StepStatus
from podium.llm import Message, ModelOptions, ModelRequest, resolve_model

from . import runs
from .conftest import Figure, Server
from .runs import calls, seconds

pytestmark = pytest.mark.real
PROVIDER = "llama"
# Greedy and seeded, so the answers repeat from run to run.
OPTIONS = '{ temperature = 0.0, seed = 7, max_tokens = 200, timeout = "120s" }'
AGENT = """---
name: helper
description: Answers briefly.
---
You are a helpful assistant. Answer in one short sentence.
"""
QUESTION = "What is the capital of France?"
JSON_PROMPT = "Which colour is the sky on a clear day? Answer with JSON."
COLOURS = {
    "type": "object",
    "properties": {"colour": {"enum": ["red", "green", "blue"]}},
    "required": ["colour"],
    "additionalProperties": False,
}


def project(folder: Path, server: Server, extra: str = "") -> Path:
    """podium.toml naming the server as provider `llama` (the default model), and the agent."""
    (folder / "agents").mkdir(exist_ok=True)
    (folder / "agents" / "helper.md").write_text(AGENT)
    config = folder / "podium.toml"
    config.write_text(
        f'model = "{PROVIDER}:{server.model}"\nagents = "agents"\n\n'
        f'[providers.{PROVIDER}]\ntype = "openai"\nbase_url = "{server.base_url}"\n'
        f"options = {OPTIONS}\n{extra}"
    )
    return config


def ask(step_id: str = "ask", prompt: str = QUESTION, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "agent", "agent": "helper", "prompt": prompt, **fields}


def figure(
    server: Server, test: str, called: list[dict[str, Any]], outcome: str, mode: str = "-"
) -> Figure:
    return runs.figure(server.name, test, called, outcome, mode)


async def run(folder: Path, workflow: dict[str, Any]) -> runs.Ran:
    model = load_config(path=folder / "podium.toml").model
    assert model is not None
    return await runs.run(folder, workflow, [model])


def test_the_cli_runs_an_agent_step_against_llama_cpp(
    llama_server: Server, tmp_path: Path, figures: list[Figure]
) -> None:
    project(tmp_path, llama_server)
    (tmp_path / "wf.yaml").write_text(json.dumps({"name": "hello", "steps": [ask()]}))
    podium = [sys.executable, "-m", "podium.cli.app"]
    db = ["--db", str(tmp_path / "podium.db")]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*podium, *args, *db], cwd=tmp_path, capture_output=True, text=True, timeout=240
        )

    done = cli("run", "wf.yaml", "--run-id", "r1")
    assert done.returncode == 0, done.stdout + done.stderr
    shown = json.loads(cli("show", "r1", "--json").stdout)
    step = next(s for s in shown["steps"] if s["id"] == "ask")
    assert isinstance(step["output"], str)
    assert step["output"].strip()
    listed = cli("events", "r1", "--json").stdout.splitlines()
    called = calls([json.loads(line) for line in listed])
    assert len(called) == 1
    assert called[0]["model"] == f"openai:{llama_server.model}"
    assert called[0]["finish_reason"] == "stop"
    assert called[0]["input_tokens"] > 0
    assert called[0]["output_tokens"] > 0
    assert called[0]["latency_seconds"] > 0
    figures.append(figure(llama_server, "agent step (podium run)", called, "succeeded"))
    print(f"\nllama.cpp answered {step['output']!r}")


async def test_an_agent_step_streams_deltas_and_counts_usage(
    llama_server: Server, tmp_path: Path, figures: list[Figure]
) -> None:
    project(tmp_path, llama_server)
    state, events, deltas = await run(tmp_path, {"name": "stream", "steps": [ask()]})
    assert state.status == "succeeded", state.completed_error
    answer = state.steps["ask"].output
    assert len(deltas) > 1, f"expected the answer in several fragments, got {deltas!r}"
    assert "".join(deltas) == answer
    called = calls(events)
    assert [c["finish_reason"] for c in called] == ["stop"]
    assert called[0]["input_tokens"] > 0
    assert called[0]["output_tokens"] > 0
    figures.append(figure(llama_server, f"streaming ({len(deltas)} deltas)", called, "succeeded"))


async def test_a_whole_reply_carries_the_servers_token_counts(
    llama_server: Server, figures: list[Figure]
) -> None:
    """Without streaming the server counts the tokens itself (llama-cpp-python sends no usage in
    a stream, even asked with `include_usage`: there Podium estimates, and says so)."""
    model = resolve_model(
        f"openai:{llama_server.model}", base_url=llama_server.base_url, api_key="unused"
    )
    request = ModelRequest(
        messages=(Message(role="user", content=QUESTION),),
        options=ModelOptions(temperature=0.0, seed=7, max_tokens=200, stream=False),
    )
    started = time.monotonic()
    try:
        response = await model.complete(request)
    finally:
        await model.aclose()
    latency = time.monotonic() - started
    assert response.finish_reason == "stop"
    assert response.text.strip()
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0
    assert not response.usage.estimated
    usage = response.usage
    row = Figure(
        llama_server.name,
        "whole reply (stream: false), direct",
        "-",
        usage.input_tokens,
        usage.output_tokens,
        latency,
        "succeeded",
    )
    figures.append(row)


async def test_a_reply_cut_off_by_max_tokens_fails_the_step(
    llama_server: Server, tmp_path: Path, figures: list[Figure]
) -> None:
    project(tmp_path, llama_server)
    prompt = "Write a long story about a dragon who learns to bake bread."
    workflow = {"name": "cut", "steps": [ask(prompt=prompt, options={"max_tokens": 3})]}
    state, events, _ = await run(tmp_path, workflow)
    step = state.steps["ask"]
    assert state.status == "failed"
    assert step.status == StepStatus.FAILED
    assert "finish_reason: length" in (step.error or ""), step.error
    assert step.output is None
    assert calls(events) == []  # the cut-off reply is not recorded as an answer
    row = figure(llama_server, "max_tokens: 3 cut-off", [], "step failed: length")
    figures.append(Figure(**{**row.__dict__, "latency_seconds": seconds(step)}))


async def test_structured_output_in_tool_mode_follows_the_schema(
    llama_server: Server, tmp_path: Path, figures: list[Figure]
) -> None:
    """`structured_output = "tool"`: a forced `respond` tool, whose arguments llama-cpp-python
    generates under a grammar made from the schema, so the shape is the server's doing."""
    project(tmp_path, llama_server, 'structured_output = "tool"\n')
    workflow = {"name": "json", "steps": [ask(prompt=JSON_PROMPT, output=COLOURS, max_reasks=0)]}
    state, events, _ = await run(tmp_path, workflow)
    assert state.status == "succeeded", state.completed_error
    assert state.steps["ask"].output["colour"] in ("red", "green", "blue")
    figures.append(
        figure(
            llama_server, "structured output (enum schema)", calls(events), "succeeded", mode="tool"
        )
    )


async def test_structured_output_in_auto_mode_falls_back_from_json_schema(
    llama_server: Server, tmp_path: Path
) -> None:
    project(tmp_path, llama_server)
    workflow = {"name": "json", "steps": [ask(prompt=JSON_PROMPT, output=COLOURS, max_reasks=2)]}
    state, _, _ = await run(tmp_path, workflow)
    error = state.steps["ask"].error or ""
    assert "HTTP 500" not in error, error
