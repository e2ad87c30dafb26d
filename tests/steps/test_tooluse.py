"""An agent's tool calls: images a tool returns reach a model that takes images, and only such a
model; several calls of one turn run at once, answered in the order they were asked."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from podium.llm.base import ToolCall, ToolSpec
from podium.steps._tooluse import ToolUse
from podium.steps._transcript import Transcript
from podium.steps.base import DETACHED, StepContext
from podium.tools.base import ToolContext, ToolImage, ToolOutput

DOT = ToolImage(data="aGk=", mime_type="image/png")


class _Picture:
    spec = ToolSpec("picture", "Draws.", {"type": "object"})

    def __init__(self) -> None:
        self.running = 0
        self.most = 0

    async def run(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(0.05)  # the call's own duration: calls overlap while it lasts
        self.running -= 1
        return ToolOutput(text=f"[image {arguments.get('n')}]", images=(DOT,))

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        return (await self.run(arguments, ctx)).text


def _use(tmp_path: Path, tool: _Picture, *, images: bool) -> ToolUse:
    ctx = StepContext(
        run_id="r", step_id="s", attempt=1, idempotency_key="k", workspace=tmp_path,
        output_limit_bytes=1_000_000,
    )  # fmt: skip
    return ToolUse({"picture": tool}, ctx, DETACHED, Transcript({}), images=images)


async def test_images_reach_a_model_that_takes_them(tmp_path: Path) -> None:
    tool = _Picture()
    calls = [ToolCall(str(i), "picture", {"n": i}) for i in range(3)]
    answered = await _use(tmp_path, tool, images=True).answer(calls, turn=1)
    assert [m.content for m in answered] == ["[image 0]", "[image 1]", "[image 2]"]
    assert all(m.images and m.images[0].mime_type == "image/png" for m in answered)
    assert tool.most == 3  # the three calls ran at once


async def test_a_model_without_images_gets_the_text_alone(tmp_path: Path) -> None:
    (answer,) = await _use(tmp_path, _Picture(), images=False).answer(
        [ToolCall("1", "picture", {"n": 1})], turn=1
    )
    assert (answer.content, answer.images) == ("[image 1]", ())
