"""An agent's tool calls: several of one model turn run at once (bounded); each is recorded
before it is made and after it returns, so after a crash a finished call is never made again and
a call that was in flight is made again only when that is harmless. A call the run's policy
holds for a person (a destructive tool) is asked about once the turn's other calls are done, and
made, edited or answered as rejected once a person decided (core/tool_approvals.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from podium.errors import StepExecutionError
from podium.llm.base import Image, Message, ToolCall
from podium.steps._approval import ask_data, edited_note, rejected_answer, waiting_error
from podium.steps._transcript import Transcript, call_key
from podium.steps.base import StepContext, StepServices
from podium.tools.base import (
    Tool,
    ToolContext,
    ToolError,
    ToolOutput,
    ToolUnavailableError,
    annotations_of,
    run_tool,
)

TOOL_RESULT_CHARS = 20_000
TOOL_CONCURRENCY = 4


class ToolUse:
    """The tools of one attempt, the record it resumes from, and where it reports."""

    def __init__(
        self,
        tools: Mapping[str, Tool],
        ctx: StepContext,
        services: StepServices,
        transcript: Transcript,
        *,
        images: bool = False,
    ) -> None:
        """`images`: the model takes images, so those a tool returns go to it as images."""
        self.tools, self.ctx, self.services, self.transcript = tools, ctx, services, transcript
        self._images = images
        self._limit = asyncio.Semaphore(TOOL_CONCURRENCY)

    async def answer(self, calls: Sequence[ToolCall], turn: int) -> list[Message]:
        """The tool messages answering one model turn's calls, in the order of the calls. The
        first call that must wait for a person (one at a time, in the model's order) is asked
        about after the others are done and recorded; the attempt then ends, and the same
        attempt continues from its transcript once a person decided."""
        keys = [call_key(turn, i) for i in range(len(calls))]
        held = [i for i, call in enumerate(calls) if self._held(call, keys[i])]
        free = [i for i in range(len(calls)) if i not in held]
        answered = await asyncio.gather(*(self._bounded(calls[i], keys[i]) for i in free))
        if held:
            await self._ask(calls[held[0]], keys[held[0]])
        return list(answered)

    def _held(self, call: ToolCall, key: str) -> bool:
        """A call the policy holds for a person that nobody decided yet (and that did not
        run: a recorded result or decision means a person saw it already)."""
        gate, transcript = self.ctx.tool_gate, self.transcript
        if gate is None or transcript.result(key) is not None or transcript.decision(key):
            return False
        tool = self.tools.get(call.name)
        return tool is not None and gate.asks(annotations_of(tool).destructive)

    async def _ask(self, call: ToolCall, key: str) -> NoReturn:
        """Record the held call (committed as `approval.requested`), then end the attempt."""
        await self.services.checkpoint(
            "tool.approval_needed", ask_data(self.tools[call.name], call, key)
        )
        raise waiting_error(call, self.ctx)

    async def _bounded(self, call: ToolCall, key: str) -> Message:
        async with self._limit:
            text, images = await self._result(call, key)
        return Message("tool", text, tool_call_id=call.id, name=call.name, images=images)

    async def _result(self, call: ToolCall, key: str) -> tuple[str, tuple[Image, ...]]:
        recorded = self.transcript.result(key)
        if recorded is not None:
            return recorded, ()  # it ran before the crash: never again (its text says what)
        if self.transcript.started_unsafely(key):
            raise StepExecutionError(
                f"tool call {call.name} of step {self.ctx.step_id} was in flight when its driver "
                "stopped and may have had its effect; retry or skip the step",
                retryable=False,
                error_type="interrupted",
            )
        decision = self.transcript.decision(key)
        if decision is not None and decision["decision"] == "rejected":
            return await self._rejected(call, key, str(decision.get("reason") or "")), ()
        edited = decision is not None and decision["decision"] == "edited"
        arguments = dict(decision["arguments"]) if edited and decision else call.arguments
        tool = self.tools.get(call.name)
        started = {"call_id": key, "tool": call.name, "arguments": arguments}
        await self.services.checkpoint("tool.started", started | {"safe": is_safe(tool)})
        clock = time.monotonic()
        output, error = await self._call(tool, call.name, arguments)
        seconds = round(time.monotonic() - clock, 6)
        text = edited_note(arguments) + output.text if edited else output.text
        record = {"tool": call.name, "ok": error is None, "latency_seconds": seconds}
        record |= {"call_id": key, "arguments": arguments, "result": text}
        record |= {"error": error} if error else {}
        await self.services.checkpoint("tool.called", record)
        images = tuple(Image(i.data, i.mime_type) for i in output.images) if self._images else ()
        return text, images

    async def _rejected(self, call: ToolCall, key: str, reason: str) -> str:
        """A held call a person rejected: never made; the model is told why, and it is
        recorded like a failed call so a resume replays the same answer."""
        text, error = rejected_answer(reason)
        record = {"tool": call.name, "ok": False, "latency_seconds": 0.0, "call_id": key}
        record |= {"arguments": call.arguments, "result": text, "error": error}
        await self.services.checkpoint("tool.called", record)
        return text

    async def _call(
        self, tool: Tool | None, name: str, arguments: dict[str, Any]
    ) -> tuple[ToolOutput, str | None]:
        """What the model is given, and the error when the call failed."""
        error: str | None = None
        output = ToolOutput(text="")
        if tool is None:
            error = f"no tool named {name!r}; available: {', '.join(self.tools) or 'none'}"
        else:
            try:
                output = await run_tool(tool, arguments, self._tool_context())
            except ToolUnavailableError as exc:  # a later attempt may find the server back
                raise StepExecutionError(
                    f"tool {name}: {exc}", retryable=True, error_type="tool_unavailable"
                ) from exc
            except ToolError as exc:
                error = str(exc)
            except Exception as exc:  # a tool bug becomes a message the model can react to
                error = f"the tool failed: {type(exc).__name__}: {exc}"
        text = f"error: {error}" if error is not None else output.text
        if len(text) > TOOL_RESULT_CHARS:
            text = text[:TOOL_RESULT_CHARS] + f"\n[cut: {len(text) - TOOL_RESULT_CHARS:,} more]"
        return ToolOutput(text=text, images=output.images if error is None else ()), error

    def _tool_context(self) -> ToolContext:
        return ToolContext(
            workspace=self.ctx.workspace,
            run_id=self.ctx.run_id,
            step_id=self.ctx.step_id,
            output_limit_bytes=self.ctx.output_limit_bytes,
            policy=self.ctx.policy,
            protected=self.ctx.protected,
        )


def is_safe(tool: Tool | None) -> bool:
    """May this tool be called again after a crash mid-call? Read-only or idempotent tools may
    (an MCP server says so in the tool's annotations); the rest may not."""
    if tool is None:
        return True  # nothing runs: the call only yields an error message
    hints = annotations_of(tool)
    return bool(hints.read_only or hints.idempotent)
