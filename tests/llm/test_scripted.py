"""The scripted model replays script files: turns per agent, tool calls, JSON, errors, streams."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import pytest

from podium.errors import ModelError, UsageError
from podium.llm.base import Message, ModelOptions, ModelRequest, ToolCall, Usage
from podium.llm.scripted import ScriptedModel, word_chunks

DEMO = """
model: scripted-demo
agents:
  Planner:
    - content: "first plan"
    - tool_calls: [{name: read_file, arguments: {path: notes.md}}]
    - json: {steps: [a, b]}
      usage: {input_tokens: 10, output_tokens: 5}
  writer:
    repeat_last: true
    turns:
      - "draft one"
      - content: "final draft"
  "*":
    - content: "anyone"
"""


def write(tmp_path: Path, text: str, name: str = "script.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def ask(
    agent: str | None = "planner",
    text: str = "hello there",
    *,
    step_id: str | None = None,
    timeout_seconds: float | None = None,
) -> ModelRequest:
    message = Message(role="user", content=text)
    return ModelRequest(
        messages=(message,),
        agent=agent,
        step_id=step_id,
        options=ModelOptions(timeout_seconds=timeout_seconds),
    )


@pytest.fixture
def model(tmp_path: Path) -> ScriptedModel:
    return ScriptedModel.from_path(write(tmp_path, DEMO))


async def test_turns_follow_the_script_per_agent(model: ScriptedModel) -> None:
    first = await model.complete(ask("planner"))
    assert first.text == "first plan"
    assert first.model == "scripted-demo"
    assert first.finish_reason == "stop"
    assert (await model.complete(ask("writer"))).text == "draft one"
    second = await model.complete(ask("planner"))
    assert second.message.tool_calls == (
        ToolCall(id="call_planner_2_1", name="read_file", arguments={"path": "notes.md"}),
    )
    assert second.finish_reason == "tool_calls"
    third = await model.complete(ask("planner"))
    assert json.loads(third.text) == {"steps": ["a", "b"]}
    assert third.usage == Usage(input_tokens=10, output_tokens=5)
    assert model.turns_served("PLANNER") == 3


async def test_agent_keys_ignore_case(model: ScriptedModel) -> None:
    assert (await model.complete(ask("PLANNER"))).text == "first plan"
    assert (await model.complete(ask("planner"))).message.tool_calls


async def test_star_serves_agents_without_their_own_list(model: ScriptedModel) -> None:
    assert (await model.complete(ask("critic"))).text == "anyone"
    assert (await model.complete(ask(None))).text == "anyone"


async def test_repeat_last_replays_the_final_turn(model: ScriptedModel) -> None:
    replies = [(await model.complete(ask("writer"))).text for _ in range(4)]
    assert replies == ["draft one", "final draft", "final draft", "final draft"]


async def test_repeat_last_as_a_list_entry(tmp_path: Path) -> None:
    path = write(tmp_path, "agents: {a: [one, {repeat_last: true}]}")
    model = ScriptedModel.from_path(path)
    assert [(await model.complete(ask("a"))).text for _ in range(3)] == ["one"] * 3


async def test_exhaustion_names_the_agent_turn_and_count(model: ScriptedModel) -> None:
    for _ in range(3):
        await model.complete(ask("planner"))
    with pytest.raises(ModelError) as caught:
        await model.complete(ask("Planner", step_id="plan"))
    message = str(caught.value)
    assert "'Planner' ran out of scripted turns at turn 4" in message
    assert "has 3 for it" in message
    assert "repeat_last: true" in message
    assert "step plan" in message
    assert caught.value.retryable is False
    assert caught.value.provider == "scripted"


async def test_unknown_agent_without_star_lists_the_scripted_agents(tmp_path: Path) -> None:
    model = ScriptedModel.from_path(write(tmp_path, "agents: {planner: [hi], writer: [yo]}"))
    with pytest.raises(ModelError, match=r"no turns for agent 'critic'; it scripts: planner, wri"):
        await model.complete(ask("critic"))
    with pytest.raises(ModelError, match="a request with no agent"):
        await model.complete(ask(None))


@pytest.mark.parametrize(
    ("status", "retryable", "error_type"),
    [(429, True, "rate_limit"), (503, True, "server"), (400, False, "bad_request"),
     (401, False, "auth"), (408, True, "timeout")],
)  # fmt: skip
async def test_error_turns_raise_like_a_provider(
    tmp_path: Path, status: int, retryable: bool, error_type: str
) -> None:
    path = write(
        tmp_path, f"agents: {{a: [{{error: {{status: {status}, message: slow down}}}}, ok]}}"
    )
    model = ScriptedModel.from_path(path)
    with pytest.raises(ModelError) as caught:
        await model.complete(ask("a"))
    assert (caught.value.status, caught.value.retryable) == (status, retryable)
    assert caught.value.error_type == error_type
    assert f"HTTP {status} slow down" in str(caught.value)
    assert (await model.complete(ask("a"))).text == "ok"  # the failed call used up turn 1


async def test_error_retryable_can_be_overridden(tmp_path: Path) -> None:
    path = write(
        tmp_path, "agents: {a: [{error: {message: nope, type: timeout, retryable: false}}]}"
    )
    with pytest.raises(ModelError) as caught:
        await ScriptedModel.from_path(path).complete(ask("a"))
    assert caught.value.retryable is False
    assert caught.value.error_type == "timeout"


async def test_streamed_deltas_join_to_the_content(tmp_path: Path) -> None:
    text = "  The quick\nbrown  fox jumps. "
    path = write(tmp_path, json.dumps({"agents": {"a": [{"content": text}]}}), "s.json")
    deltas: list[str] = []
    response = await ScriptedModel.from_path(path).complete(ask("a"), on_delta=deltas.append)
    assert response.text == text
    assert "".join(deltas) == text
    assert deltas == ["  ", "The ", "quick\n", "brown  ", "fox ", "jumps. "]


def test_word_chunks_keep_every_character() -> None:
    assert word_chunks("") == []
    assert word_chunks("one two") == ["one ", "two"]
    assert "".join(word_chunks(" a\tb\n\nc ")) == " a\tb\n\nc "


async def test_usage_is_estimated_when_not_scripted(model: ScriptedModel) -> None:
    response = await model.complete(ask("planner", text="x" * 40))
    assert response.usage == Usage(input_tokens=10, output_tokens=3)  # "first plan" = 10 chars
    assert response.usage.estimated


async def test_scripted_usage_is_not_marked_estimated(model: ScriptedModel) -> None:
    for _ in range(3):
        response = await model.complete(ask("planner"))
    assert response.usage == Usage(input_tokens=10, output_tokens=5)
    assert not response.usage.estimated


async def test_delay_is_honoured_and_a_short_timeout_fails_retryably(tmp_path: Path) -> None:
    path = write(tmp_path, "agents: {a: [{content: late, delay_seconds: 0.05}]}")
    model = ScriptedModel.from_path(path)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await model.complete(ask("a"), on_delta=lambda _: None)).text == "late"
    assert loop.time() - started >= 0.04
    model.reset()
    with pytest.raises(ModelError, match=r"timed out after 0\.01s") as caught:
        await model.complete(ask("a", timeout_seconds=0.01))
    assert caught.value.retryable is True


async def test_concurrent_calls_take_distinct_turns(tmp_path: Path) -> None:
    path = write(tmp_path, "agents: {a: [{content: one, delay_seconds: 0.01}, two, three]}")
    model = ScriptedModel.from_path(path)
    replies = await asyncio.gather(*(model.complete(ask("a")) for _ in range(3)))
    assert sorted(r.text for r in replies) == ["one", "three", "two"]


async def test_from_data_builds_an_inline_script() -> None:
    model = ScriptedModel.from_data({"agents": {"*": ["hi"]}})
    assert (await model.complete(ask("x"))).text == "hi"
    assert model.name == "scripted:<inline script>"


# -- malformed scripts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("- just a list", "script: must be a mapping with `agents:`"),
        ("model: x", "script: has no `agents:`"),
        ("agents: {}\n", "agents: is empty"),
        ("agents: {a: []}", "agents.a: has no turns"),
        ("agents: {a: hello}", "agents.a: must be a list of turns"),
        ("agents: {a: [hi], A: [yo]}", "agents.A: repeats an agent name"),
        ("agents: {a: [{contnet: hi}]}", "agents.a turn 1: unknown key contnet; allowed:"),
        ("agents: {a: [hi, {}]}", "agents.a turn 2: needs one of content, json, tool_calls"),
        ("agents: {a: [{content: x, json: 1}]}", "has both content and json"),
        ("agents: {a: [{content: x, error: boom}]}", "has error together with content"),
        ("agents: {a: [{content: 42}]}", "agents.a turn 1.content: must be a string, got 42"),
        ("agents: {a: [{tool_calls: {name: x}}]}", "tool_calls: must be a list"),
        ("agents: {a: [{tool_calls: [{arguments: {}}]}]}", "tool_calls[0].name: is required"),
        ("agents: {a: [{tool_calls: [{name: t, arguments: [1]}]}]}", "arguments: must be a map"),
        ("agents: {a: [{error: {status: slow}}]}", "error.status: must be an HTTP status code"),
        ("agents: {a: [{content: x, usage: {input_tokens: -1}}]}", "usage.input_tokens: must be"),
        ("agents: {a: [{content: x, delay_seconds: soon}]}", "delay_seconds: must be a number"),
        ("agents: {a: {turns: [x], repeat_last: yes please}}", "repeat_last: must be true or"),
        ("agents: {a: {turns: [x], repeat: true}}", "agents.a: unknown key repeat"),
        ("model: 3\nagents: {a: [x]}", "model: must be a non-empty string"),
        ("agents: {a: [{json: 2024-01-01}]}", "json: cannot be serialised as JSON"),
    ],
)
def test_malformed_scripts_name_the_file_and_the_problem(
    tmp_path: Path, script: str, expected: str
) -> None:
    path = write(tmp_path, script)
    with pytest.raises(UsageError) as caught:
        ScriptedModel.from_path(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_missing_file_and_bad_syntax(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"nowhere\.yaml does not exist; check the path"):
        ScriptedModel.from_path(tmp_path / "nowhere.yaml")
    with pytest.raises(UsageError, match=r"bad\.yaml is not valid YAML"):
        ScriptedModel.from_path(write(tmp_path, "agents: [unclosed", "bad.yaml"))
    with pytest.raises(UsageError, match=r"bad\.json is not valid JSON"):
        ScriptedModel.from_path(write(tmp_path, "{'agents': 1}", "bad.json"))


async def test_steps_get_their_own_turns_whatever_agent_runs_them(tmp_path: Path) -> None:
    script = """
    steps:
      a: ["a one", "a two"]
      b: ["b one"]
    agents:
      "*": ["by agent"]
    """
    model = ScriptedModel.from_path(write(tmp_path, script))

    async def reply(step: str) -> str:
        request = ModelRequest(messages=(Message("user", "hi"),), agent="same", step_id=step)
        return (await model.complete(request)).text

    assert [await reply("b"), await reply("a"), await reply("a")] == ["b one", "a one", "a two"]
    assert await reply("c") == "by agent"  # a step the script does not list: its agent's turns


async def test_a_script_of_steps_alone_is_valid(tmp_path: Path) -> None:
    model = ScriptedModel.from_path(write(tmp_path, "steps:\n  s: [only]\n"))
    request = ModelRequest(messages=(Message("user", "hi"),), step_id="s")
    assert (await model.complete(request)).text == "only"
