"""Issue 8, defects 3 and 4: a capped output states the size the program really wrote, once,
and a truncated output that must be JSON says it was truncated and how to raise the cap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from podium.core.outputs import cap_output, with_marker
from podium.runtime.engine import Engine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with await Engine.open(tmp_path / "podium.db", workspace=tmp_path) as eng:
        yield eng


def _printing(size: int, **fields: Any) -> dict[str, Any]:
    run = f"head -c {size} /dev/zero | tr '\\0' x"
    step = {"id": "big", "kind": "shell", "shell": "sh", "run": run}
    return {"name": "t", "output_limit_bytes": 1024, "steps": [{**step, **fields}]}


@pytest.mark.parametrize("size", [3000, 50 * 1024 * 1024])
async def test_the_marker_states_the_programs_real_size(engine: Engine, size: int) -> None:
    state = await engine.run(_printing(size))
    step = state.steps["big"]
    assert state.status == "succeeded", step.error
    assert step.truncated is True
    assert step.output.count("[truncated") == 1
    assert step.output.endswith(f" of {size} bytes]")
    assert len(step.output.encode()) <= 1024


async def test_a_truncated_json_output_says_it_was_truncated(engine: Engine) -> None:
    state = await engine.run(_printing(3000, output="json"))
    error = state.steps["big"].error or ""
    assert "not JSON" not in error
    assert "truncated at the cap (kept 1,024 of 3,000 bytes)" in error
    assert "output_limit_bytes" in error


def test_an_output_its_executor_marked_is_cut_again_with_the_same_total() -> None:
    marked = with_marker("é" * 600, 1200, 3000)  # 1,200 bytes and a marker: over a 1 KiB cap
    output, truncated = cap_output(marked, 1024)
    assert truncated is True
    assert output.count("[truncated") == 1
    assert output.endswith(" of 3000 bytes]")
    assert len(output.encode()) <= 1024


def test_an_output_within_the_cap_that_its_executor_marked_stays_truncated() -> None:
    marked = with_marker("abc", 3, 5000)
    assert cap_output(marked, 1024) == (marked, True)


def test_a_large_value_is_cut_to_the_cap_marker_included() -> None:
    output, truncated = cap_output({"k": "v" * 5000}, 1024)
    assert truncated is True
    assert len(output.encode()) <= 1024
    assert output.endswith(" of 5008 bytes]")  # {"k":"…"} as compact JSON
