"""What the agent loop says about a tool call held for a person (core/tool_approvals.py): the
`tool.approval_needed` report, the error that ends the attempt while it waits, and what the model
is told of a person's edit or rejection."""

from __future__ import annotations

import json
from typing import Any

from podium.core.tool_approvals import REJECTED
from podium.errors import StepExecutionError
from podium.llm.base import ToolCall
from podium.steps.base import StepContext
from podium.tools.base import Tool

WAITING = "awaiting_approval"  # the error type of an attempt that ended to wait for a person


def ask_data(tool: Tool, call: ToolCall, key: str) -> dict[str, Any]:
    """The `tool.approval_needed` report: the call as the model made it, the server it goes
    to (an MCP tool) and the tool's input schema, which an edit is checked against."""
    return {
        "call_id": key,
        "tool": call.name,
        "arguments": dict(call.arguments),
        "server": server_of(tool),
        "schema": dict(tool.spec.parameters),
    }


def server_of(tool: Tool) -> str | None:
    """The MCP server of a tool exposed as `<server>__<tool>` (its own name beside that), or
    None for a built-in or Python tool."""
    own = getattr(tool, "name", None)
    exposed = tool.spec.name
    if isinstance(own, str) and own != exposed and "__" in exposed:
        return exposed.split("__", 1)[0]
    return None


def waiting_error(call: ToolCall, ctx: StepContext) -> StepExecutionError:
    """Ends the attempt once its held call is recorded (the run then has it as
    `approval.requested`; this outcome is not the step's any more). Outside a run, where no
    one records the request, it is the step's error and says why."""
    rid, sid = ctx.run_id, ctx.step_id
    return StepExecutionError(
        f"tool call {call.name} of step {sid} waits for a person (policy rule "
        f"destructive_tools): podium approve {rid} {sid}, or podium reject {rid} {sid} "
        "--reason TEXT",
        retryable=False,
        error_type=WAITING,
    )


def rejected_answer(reason: str) -> tuple[str, str]:
    """What the model is given for a rejected call, and the error recorded with it."""
    error = f"{REJECTED}: {reason or 'no reason given'}"
    return f"error: {error}", error


def edited_note(arguments: dict[str, Any]) -> str:
    """Put before an edited call's result, so the model knows what was actually done."""
    shown = json.dumps(arguments, ensure_ascii=False, sort_keys=True)
    return f"(a person changed this call's arguments to {shown} before it was made)\n"
