"""User patterns cannot stall the event loop: an output schema's pattern that backtracks
catastrophically fails its own step with a clear error while other steps run on time, and a
routing rule's pattern does the same for a message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from podium.errors import UsageError
from podium.runtime.engine import Engine
from podium.spec import patterns
from podium.spec.answers import answer_problem
from podium.spec.routing import RoutingRule

# A regression runs `re` in C, holding the GIL: only the thread method can end such a test.
pytestmark = pytest.mark.timeout(60, method="thread")

CALL = "tests.runtime.callables"
EVIL = "^(a|aa)+$"
VALUE = "a" * 60 + "b"  # about 10**12 ways to fail for a backtracking engine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with await Engine.open(tmp_path / "podium.db", workspace=tmp_path) as eng:
        yield eng


def py(step_id: str, *needs: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "python", "call": f"{CALL}:echo", "needs": list(needs), **fields}


async def _max_lag(stop: asyncio.Event) -> float:
    """The longest the loop was late for a 10 ms tick while the run went on."""
    worst = 0.0
    while not stop.is_set():
        before = time.monotonic()
        await asyncio.sleep(0.01)
        worst = max(worst, time.monotonic() - before - 0.01)
    return worst


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "pattern": EVIL},
        {"type": "object", "patternProperties": {EVIL: {"type": "integer"}}},
        {"type": "object", "patternProperties": {EVIL: {}}, "additionalProperties": False},
    ],
    ids=["pattern", "patternProperties", "additionalProperties"],
)
async def test_a_catastrophic_pattern_fails_its_step_and_the_loop_keeps_ticking(
    engine: Engine, schema: dict[str, Any]
) -> None:
    value: Any = f'"{VALUE}"' if schema["type"] == "string" else {VALUE: "x"}  # JSON text
    chain = [py("c0", args={"value": 0, "delay": 0.1})]
    chain += [py(f"c{i}", f"c{i - 1}", args={"value": i, "delay": 0.1}) for i in range(1, 6)]
    doc = {
        "name": "t",
        "on_failure": "collect",
        "steps": [py("bad", args={"value": value, "delay": 0.15}, output=schema), *chain],
    }
    stop = asyncio.Event()
    ticker = asyncio.create_task(_max_lag(stop))
    started = time.monotonic()
    state = await engine.run(doc)
    took = time.monotonic() - started
    stop.set()
    lag = await ticker

    assert all(state.steps[f"c{i}"].output == i for i in range(6))
    bad = state.steps["bad"]
    assert bad.error_type == "output"
    assert bad.attempts == 1  # not retryable
    assert "took longer than 0.1 s" in (bad.error or "")
    assert "simplify the pattern" in (bad.error or "")
    assert lag < 1.0, f"the event loop was blocked for {lag:.2f} s"
    assert took < 10


async def test_fast_patterns_still_validate(engine: Engine) -> None:
    schema = {
        "type": "object",
        "properties": {"tag": {"type": "string", "pattern": "^v[0-9]+$"}},
        "patternProperties": {"^x-": {"type": "integer"}},
        "additionalProperties": False,
    }
    doc = {
        "name": "t",
        "on_failure": "collect",
        "steps": [
            py("ok", args={"value": {"tag": "v12", "x-n": 3}}, output=schema),
            py("nomatch", args={"value": {"tag": "12"}}, output=schema),
            py("extra", args={"value": {"tag": "v1", "y": 1}}, output=schema),
            py("badsub", args={"value": {"x-n": "three"}}, output=schema),
        ],
    }
    state = await engine.run(doc)
    assert state.steps["ok"].output == {"tag": "v12", "x-n": 3}
    for step_id in ("nomatch", "extra", "badsub"):
        assert state.steps[step_id].error_type == "output", step_id
        assert "does not match its schema" in (state.steps[step_id].error or ""), step_id


async def test_unevaluated_properties_beside_pattern_properties_is_refused(
    engine: Engine,
) -> None:
    schema = {"type": "object", "patternProperties": {EVIL: {}}, "unevaluatedProperties": False}
    state = await engine.run(
        {"name": "t", "steps": [py("u", args={"value": {VALUE: 1}}, output=schema)]}
    )
    error = state.steps["u"].error or ""
    assert "output schema is invalid" in error
    assert "use `additionalProperties` instead" in error


def test_a_human_answer_against_a_catastrophic_schema_returns_promptly() -> None:
    started = time.monotonic()
    problem = answer_problem({"type": "string", "pattern": EVIL}, VALUE)
    assert time.monotonic() - started < 1.0
    assert problem is not None
    assert "took longer than" in problem


def test_routing_with_a_catastrophic_pattern_returns_promptly_with_an_error() -> None:
    rule = RoutingRule(pattern=EVIL, agent="coder")
    assert rule.matches("aaaa")
    started = time.monotonic()
    with pytest.raises(UsageError, match=r"routing\.rules.*took longer than .*simplify"):
        rule.matches(VALUE)
    assert time.monotonic() - started < 1.0
    assert not rule.matches("b" * 100)


def test_the_matches_of_one_check_share_one_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pattern that is quick enough once but is matched against thousands of values must not
    add up to a stall: every match of one check draws on `CHECK_SECONDS`. The clock is
    patterns' own, advanced 0.2 s per reading, so the test does not depend on the machine."""
    ticks = iter(i * 0.2 for i in range(10_000))
    monkeypatch.setattr(patterns, "_clock", lambda: next(ticks))
    schema = {"type": "array", "items": {"type": "string", "pattern": "^a"}}
    problem = answer_problem(schema, ["a"] * 1000)
    assert problem is not None
    assert "took longer than 1 s in all" in problem
    assert next(ticks) < 20 * 0.2  # it stopped after a handful of matches, not after 1,000
    assert answer_problem(schema, ["a"] * 3) is None  # within the budget: checked as before


def test_one_match_stops_at_what_is_left_of_the_budget() -> None:
    started = time.monotonic()
    expected = pytest.raises(patterns.PatternTimeout, match=r"took longer than 0\.05 s in all")
    with expected, patterns.time_limit(0.05):
        patterns.search(EVIL, VALUE, seconds=5.0)
    assert time.monotonic() - started < 1.0
