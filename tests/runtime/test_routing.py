"""Routing a thread's message to an agent: `agent=` wins, then the project's rules in order,
then its router agent (a structured-output call whose answer is an enum of the allowed agents),
then its default; blocked agents are never chosen; bad routing is reported with its key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium.config import load_config
from podium.errors import SpecError, UsageError

from ._threads import Model, model, open_engine

__all__ = ["model"]  # the fixture

RULES = {
    "rules": [
        {"pattern": r"\b(bug|stack ?trace|python)\b", "agent": "coder"},
        {"pattern": "^write", "agent": "writer"},
    ],
    "default": "assistant",
}


async def test_the_first_matching_rule_chooses_and_is_recorded(
    tmp_path: Path, model: Model
) -> None:
    async with await open_engine(tmp_path, routing=RULES) as engine:
        asked = await engine.ask("Write a poem about a Python BUG")
        state = await engine.wait(asked.run_id)
        other = await engine.ask("Write a poem", thread=asked.thread)
        await engine.wait(other.run_id)

    assert state.steps["answer"].output.startswith("coder: ")
    assert asked.routing == {
        "requested": None,
        "agent": "coder",
        "by": "rule",
        "rule": 0,
        "pattern": RULES["rules"][0]["pattern"],
    }
    assert state.thread is not None
    assert state.thread["routing"] == asked.routing
    assert (other.agent, other.routing["rule"]) == ("writer", 1)


async def test_no_match_takes_the_default(tmp_path: Path, model: Model) -> None:
    async with await open_engine(tmp_path, routing=RULES) as engine:
        asked = await engine.ask("What time is it?")
        await engine.wait(asked.run_id)
    assert asked.routing == {"requested": None, "agent": "assistant", "by": "default"}
    assert [c.agent for c in model.calls] == ["assistant"]


async def test_a_named_agent_wins_over_the_rules(tmp_path: Path, model: Model) -> None:
    async with await open_engine(tmp_path, routing=RULES) as engine:
        asked = await engine.ask("fix this python bug", agent="WRITER")
        state = await engine.wait(asked.run_id)
    assert asked.routing == {"requested": "WRITER", "agent": "writer", "by": "request"}
    assert state.steps["answer"].output == "writer: fix this python bug"


async def test_the_router_chooses_among_the_allowed_agents(tmp_path: Path, model: Model) -> None:
    model.route = {"agent": "writer"}
    routing = {"router": "router", "default": "assistant"}
    async with await open_engine(
        tmp_path, routing=routing, policy={"block_agents": ["coder"]}
    ) as engine:
        asked = await engine.ask("Something about sonnets")
        state = await engine.wait(asked.run_id)

    assert state.steps["answer"].output == "writer: Something about sonnets"
    assert asked.routing["by"] == "router"
    assert asked.routing["router"] == "router"
    [call] = model.asked("router")
    assert call.output_schema is not None
    allowed = call.output_schema["properties"]["agent"]["enum"]
    assert allowed == ["assistant", "writer"]  # not the router itself, not the blocked coder
    assert "Something about sonnets" in call.messages[-1].content


async def test_a_router_answer_outside_the_enum_falls_back_to_the_default(
    tmp_path: Path, model: Model
) -> None:
    model.route = {"agent": "coder"}
    routing = {"router": "router", "default": "assistant"}
    async with await open_engine(
        tmp_path, routing=routing, policy={"block_agents": ["coder"]}
    ) as engine:
        asked = await engine.ask("hi")
        await engine.wait(asked.run_id)
    assert (asked.agent, asked.routing["by"]) == ("assistant", "default")
    assert "not one of" in asked.routing["router_error"]


async def test_a_blocked_agent_is_never_chosen(tmp_path: Path, model: Model) -> None:
    policy = {"block_agents": ["Coder"]}
    async with await open_engine(tmp_path, routing=RULES, policy=policy) as engine:
        asked = await engine.ask("a python bug")
        await engine.wait(asked.run_id)
        with pytest.raises(UsageError, match=r"agent 'coder' \(--agent\) is blocked by the"):
            await engine.ask("a python bug", agent="coder")
        assert len(await engine.list_runs()) == 1
    assert asked.routing == {
        "requested": None,
        "agent": "assistant",
        "by": "default",
        "skipped": ["coder"],
    }


async def test_nothing_to_choose_is_a_clear_error(tmp_path: Path, model: Model) -> None:
    async with await open_engine(tmp_path, routing={"rules": RULES["rules"]}) as engine:
        with pytest.raises(UsageError, match="no agent was chosen for this message: name one"):
            await engine.ask("hello")
        assert await engine.list_runs() == []


async def test_routing_that_names_unknown_agents_lists_each_by_key_path(
    tmp_path: Path, model: Model
) -> None:
    routing = {"rules": [{"pattern": "x", "agent": "codr"}], "default": "nobody"}
    async with await open_engine(tmp_path, routing=routing) as engine:
        with pytest.raises(SpecError) as refused:
            await engine.ask("anything")
    where = [problem.path for problem in refused.value.problems]
    assert where == ["routing.rules.0.agent", "routing.default"]
    assert "did you mean 'coder'?" in str(refused.value)


def test_a_bad_pattern_is_reported_at_load_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "podium.toml").write_text(
        '[routing]\ndefault = "assistant"\n[[routing.rules]]\npattern = "(open"\nagent = "a"\n'
        '[threads]\non_busy = "later"\n'
    )
    with pytest.raises(SpecError) as refused:
        load_config(tmp_path)
    text = str(refused.value)
    assert "podium.toml: routing.rules.0.pattern: not a valid regular expression" in text
    assert "podium.toml: threads.on_busy: Input should be 'reject', 'queue' or 'interrupt'" in text
