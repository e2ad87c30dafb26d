"""The human `podium show RUN STEP`: one step in full, drawn from `stepviews.step_detail_document`
so the text and `--json` say the same."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from podium.cli.render import clock_time, duration, feedback_text, stamp, styled

INDENT = 4


def step_renderable(doc: dict[str, Any]) -> RenderableType:
    """Header facts, the rendered input, every attempt, the output or error (whole, as stored),
    then each model call and tool call."""
    parts: list[RenderableType] = [_step_header(doc)]
    if doc.get("sandbox") == "off":
        parts.append(Text("sandbox: off (the engine's environment, network and files)", "yellow"))
    if doc.get("approval"):
        parts += _held_parts(doc["approval"])
    if doc["input"]:
        parts += [Text("input (as rendered)", style="bold"), _fields(doc["input"])]
    elif doc["input_error"]:
        parts.append(Text(f"input: cannot be rendered: {doc['input_error']}", style="red"))
    if doc["tries"]:
        parts += [Text("attempts", style="bold"), _tries_table(doc["tries"])]
    parts += _result_parts(doc)
    if doc["model_calls"]:
        parts += [Text("model calls", style="bold"), *_model_lines(doc["model_calls"])]
    if doc["tool_calls"]:
        parts += [Text("tool calls", style="bold"), *_tool_lines(doc["tool_calls"])]
    for note in doc["progress"]:
        done = f"{note['fraction']:.0%} " if note["fraction"] is not None else ""
        parts.append(Text(f"progress {clock_time(_at(note['at']))}  {done}{note['message']}"))
    if doc["feedback"]:
        parts += [Text("feedback", style="bold"), *_feedback_lines(doc["feedback"])]
    return Group(*parts)


def _held_parts(approval: dict[str, Any]) -> list[RenderableType]:
    """What the step waits on a person for: an agent's held tool call in full (the tool, its
    server, its arguments), else the subject (see `podium approvals` for the rest)."""
    why = f" ({approval['reason']})" if approval.get("reason") else ""
    title = Text(f"waiting for a person since {clock_time(_at(approval['since']))}{why}")
    title.stylize("bold")
    asked = approval["input"]
    if approval["subject"] != "tool":
        return [title, Text(f"asks about its {approval['subject']}")]
    server = f" on MCP server {asked['server']}" if asked.get("server") else ""
    call = Text(f"tool {asked.get('tool')}{server}, call {asked.get('call_id')}, not made yet")
    arguments = _pretty(asked.get("arguments") or {})
    body = Padding(Text(f"arguments: {arguments}"), (0, 0, 0, INDENT))
    return [title, Padding(call, (0, 0, 0, INDENT)), body]


def _feedback_lines(notes: list[dict[str, Any]]) -> list[RenderableType]:
    """`2026-12-01 12:00:01  up by ann`, then the comment, whole, indented."""
    parts: list[RenderableType] = []
    for note in notes:
        who = feedback_text(note["rating"], note["who"], None)
        parts.append(Text(f"{stamp(_at(note['at']))}  {who}"))
        if note["comment"]:
            parts.append(Padding(Text(note["comment"]), (0, 0, 0, INDENT)))
    return parts


def _at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _step_header(doc: dict[str, Any]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("step", f"{doc['id']} ({doc['kind']})")
    grid.add_row("status", styled(doc["status"]))
    if doc["parent"] and doc.get("iteration") is not None:
        grid.add_row("loop", f"{doc['parent']}, iteration {doc['iteration']}")
    elif doc["parent"]:
        grid.add_row("plan", doc["parent"])
    if doc["needs"]:
        grid.add_row("needs", ", ".join(doc["needs"]))
    if doc["reused_from"]:
        grid.add_row("reused", f"from run {doc['reused_from']} (this fork did not run it)")
    for child in doc.get("child_runs", []):
        grid.add_row("child run", f"{child['run_id']} {child['status']}")
    if doc.get("approval_reason"):
        grid.add_row("approval", f"asked ({doc['approval_reason']})")
    grid.add_row("attempts", str(doc["attempts"]))
    grid.add_row("started", stamp(_at(doc["started_at"])))
    grid.add_row("finished", stamp(_at(doc["finished_at"])))
    grid.add_row("took", duration(doc["duration_seconds"]))
    if doc["tokens"] or doc["cost_usd"]:
        grid.add_row("usage", f"{doc['tokens']:,} tokens, ${doc['cost_usd']:.4f}")
    for name in ("reason", "skip_message"):
        if doc[name]:
            grid.add_row(name.replace("_", " "), doc[name])
    return grid


def _fields(values: dict[str, Any]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column(overflow="fold")
    for name, value in values.items():
        grid.add_row(name, value if isinstance(value, str) else json.dumps(value, indent=2))
    return grid


def _tries_table(tries: list[dict[str, Any]]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for name in ("#", "started", "finished", "took", "outcome"):
        table.add_column(name, no_wrap=True)
    table.add_column("error", overflow="fold")
    for t in tries:
        retry = f" (next try {clock_time(_at(t['retry_at']))})" if t["retry_at"] else ""
        table.add_row(
            str(t["attempt"]),
            clock_time(_at(t["started_at"])),
            clock_time(_at(t["finished_at"])),
            duration(t["duration_seconds"]),
            styled(t["outcome"]),
            Text((t["error"] or "") + retry, style="red"),
        )
    return table


def _result_parts(doc: dict[str, Any]) -> list[RenderableType]:
    parts: list[RenderableType] = []
    if doc["output"] is not None:
        out = doc["output"]
        capped = " (capped when stored: the marker at its end says how much was kept)"
        title = "output" + (capped if doc["truncated"] else "")
        parts += [Text(title, style="bold"), Text(out if isinstance(out, str) else _pretty(out))]
    if doc["error"]:
        parts += [Text("error", style="bold red"), Text(doc["error"], style="red")]
    meta = dict(doc["meta"] or {})
    stderr = meta.pop("stderr_tail", None)
    if meta:
        parts += [Text("meta", style="bold"), _fields(meta)]
    if stderr:
        parts += [Text("stderr (its last 2,000 characters)", style="bold"), Text(stderr)]
    return parts


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _model_lines(calls: list[dict[str, Any]]) -> list[RenderableType]:
    """`12:00:01  try 1 turn 2  openai:gpt-4o  220 in, 48 out tokens  $0.0012  0.8s  stop`,
    then the reply, whole, indented."""
    parts: list[RenderableType] = []
    for c in calls:
        turn = f" turn {c['turn']}" if c["turn"] is not None else ""
        counted = "~" if c["estimated"] else ""
        facts = [
            clock_time(_at(c["at"])),
            f"try {c['attempt']}{turn}",
            c["model"] + (f" ({c['agent']})" if c["agent"] else ""),
            f"{c['input_tokens']:,} in, {c['output_tokens']:,}{counted} out tokens",
            f"${c['cost_usd']:.4f}",
            duration(c["latency_seconds"]),
            c["finish_reason"] or "",
        ]
        parts.append(Text("  ".join(f for f in facts if f), style="bold"))
        reply = c["reply"] or {}
        if reply.get("content"):
            parts.append(Padding(Text(reply["content"]), (0, 0, 0, INDENT)))
        for asked in reply.get("tool_calls") or []:
            arguments = json.dumps(asked.get("arguments"), ensure_ascii=False)
            parts.append(Padding(Text(f"→ {asked.get('name')}({arguments})"), (0, 0, 0, INDENT)))
    return parts


def _tool_lines(calls: list[dict[str, Any]]) -> list[RenderableType]:
    """`12:00:01  try 1  read_file  0.1s  ok`, then its arguments and result (or error)."""
    parts: list[RenderableType] = []
    for c in calls:
        ok = {None: Text("running", style="blue"), True: Text("ok", style="green")}
        at = clock_time(_at(c["started_at"] or c["finished_at"]))
        facts = (at, f"try {c['attempt']}", c["tool"], duration(c["duration_seconds"]), "")
        head = Text("  ".join(facts), style="bold")
        head.append_text(ok.get(c["ok"], Text("failed", style="red")))
        parts.append(head)
        body = Text(f"arguments: {json.dumps(c['arguments'], ensure_ascii=False)}")
        if c["error"]:
            body.append(f"\nerror: {c['error']}", style="red")
        elif c["result"] is not None:
            body.append(f"\nresult: {c['result']}")
        parts.append(Padding(body, (0, 0, 0, INDENT)))
    return parts
