"""A person approves an agent's destructive tool call before it is made.

The agent loop (steps/_tooluse.py) asks: a call to a tool that says it is destructive (MCP's
`destructiveHint`, a Python tool's `ToolAnnotations(destructive=True)`), or that the policy
names, is not made while no decision about it is in the step's transcript. The attempt reports
`tool.approval_needed` (checked here: `ToolAsk`) once every other call of the model turn is
done and recorded, and ends. The core records that report as `approval.requested` with
`subject: tool` and `input: {tool, arguments, call_id, server, schema}`: the step is `waiting`
with its transcript kept, nothing of it runs, and a run with nothing else to do parks.

A decision (`approval.granted`, `approval.edited` with `{"arguments": …}`, `approval.rejected`)
goes into the transcript as a `tool_decision` entry for that call id and requeues the step: the
same attempt continues from its transcript (the recorded model turns are replayed, not asked
again), makes the approved call once (with the edited arguments), or answers a rejected one with
"a person rejected this call: REASON" for the model to read, and goes on. Several destructive
calls of one model turn are asked one at a time, in the order the model made them; each is its
own record, addressed by the step, and decided once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import SchemaError, best_match  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field

from podium.core import events as ev
from podium.core.joins import make_ready
from podium.core.state import Approval, RunState, StepState
from podium.errors import UsageError

SUBJECT = "tool"
REJECTED = "a person rejected this call"
REASON = "policy: destructive_tools"
SHOWN_CHARS = 120


@dataclass(frozen=True, slots=True)
class ToolGate:
    """Which tool calls of an agent wait for a person: with `destructive` (the policy rule
    `destructive_tools`), every call to a tool that says it is destructive. A tool that does not
    say (`destructive` unknown) is not asked about. Plain data: it travels with the launch."""

    destructive: bool = True

    def asks(self, destructive: bool | None) -> bool:
        return self.destructive and destructive is True


class ToolAsk(BaseModel):
    """The shape of a `tool.approval_needed` report: the call the attempt holds back."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    call_id: str = Field(min_length=1)
    tool: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)
    server: str | None = None  # the MCP server the tool belongs to
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")


def request_event(step_id: str, data: Mapping[str, Any], at: Any) -> ev.ApprovalRequested:
    """The `approval.requested` a `tool.approval_needed` report becomes. ValueError (pydantic's)
    when the report does not have the shape of `ToolAsk`."""
    ask = ToolAsk.model_validate(dict(data))
    asked = ask.model_dump(mode="json", by_alias=True)
    return ev.ApprovalRequested.model_validate(
        {"at": at, "step_id": step_id, "subject": SUBJECT, "input": asked, "reason": REASON}
    )


def gate_of(state: RunState) -> ToolGate:
    """The run's rule for tool calls, from the policy `run.created` recorded: the rule
    `destructive_tools` (on unless the project configuration turns it off)."""
    return ToolGate(destructive=state.policy.requires_tool_approval(destructive=True))


# ------------------------------------------------------------------------------- deciding


def approve_event(
    found: Approval, edits: Mapping[str, Any] | None, now: datetime
) -> ev.ApprovalGranted | ev.ApprovalEdited:
    """`approval.granted`, or `approval.edited` carrying the call's whole edited arguments
    (`edits` replace the asked ones key by key), checked against the tool's input schema.
    UsageError (one line) saying what to fix."""
    if not edits:
        return ev.ApprovalGranted(at=now, step_id=found.step_id)
    arguments = {**dict(found.input.get("arguments") or {}), **dict(edits)}
    problem = arguments_problem(found.input.get("schema"), arguments)
    if problem is not None:
        tool = found.input.get("tool")
        raise UsageError(
            f"the edited arguments of tool {tool} (step {found.step_id}) are not valid: "
            f"{problem}; nothing was recorded"
        )
    return ev.ApprovalEdited(at=now, step_id=found.step_id, input={"arguments": arguments})


def arguments_problem(schema: Any, arguments: dict[str, Any]) -> str | None:
    """Why `arguments` do not fit the tool's input `schema` (None when they do, or when the
    tool gave no usable schema)."""
    if not isinstance(schema, Mapping) or not schema:
        return None
    try:
        Draft202012Validator.check_schema(dict(schema))
    except SchemaError:
        return None  # a server's broken schema is its business: the call tells
    error = best_match(Draft202012Validator(dict(schema)).iter_errors(arguments))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where + ': ' if where else ''}{error.message}"


# ------------------------------------------------------------------------------- folding


def folded(
    state: RunState, e: ev.ApprovalGranted | ev.ApprovalEdited | ev.ApprovalRejected
) -> bool:
    """Fold a decision about a held tool call (True), or leave any other decision to the
    fold's own handlers (False)."""
    asked = state.approvals.get(e.step_id)
    if asked is None or asked.subject != SUBJECT:
        return False
    step = state.steps[e.step_id]
    if isinstance(e, ev.ApprovalRejected):
        decided(state, step, asked, "rejected", reason=e.reason)
    elif isinstance(e, ev.ApprovalEdited):
        decided(state, step, asked, "edited", arguments=e.input.get("arguments") or {})
    else:
        decided(state, step, asked, "granted")
    return True


def decided(
    state: RunState,
    step: StepState,
    asked: Approval,
    decision: str,
    *,
    arguments: Mapping[str, Any] | None = None,
    reason: str = "",
) -> None:
    """A person decided the held call: the decision joins the step's transcript (so the
    resumed attempt makes the call, with `arguments` when edited, or tells the model it was
    rejected) and the step is requeued to continue the same attempt."""
    state.approvals.pop(step.id, None)
    entry: dict[str, Any] = {
        "kind": "tool_decision",
        "call_id": asked.input.get("call_id"),
        "decision": decision,
    }
    if arguments is not None:
        entry["arguments"] = dict(arguments)
    if decision == "rejected":
        entry["reason"] = reason or "no reason given"
    step.transcript = [*(step.transcript or ()), entry]
    step.requeued = True
    make_ready(state, step)


def held_call(asked: Mapping[str, Any]) -> str:
    """`tool X({"path": …})`: the held call in one short line."""
    arguments = json.dumps(asked.get("arguments") or {}, ensure_ascii=False, sort_keys=True)
    server = asked.get("server")
    where = f" on MCP server {server}" if server else ""
    text = f"tool {asked.get('tool')}({arguments}){where}"
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"
