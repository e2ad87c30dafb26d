"""An agent attempt's recorded past: the model replies and tool results it already had before its
driver died. A resumed attempt replays them in order instead of asking the model or calling the
tool again, so it reaches the same point and goes on from there."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from podium.llm.base import Message, ToolCall


class Transcript:
    """Built from the `transcript` an attempt's history carries (see `core.turn`)."""

    def __init__(self, history: Mapping[str, Any]) -> None:
        entries: list[dict[str, Any]] = list(history.get("transcript") or ())
        self._replies = deque(e["reply"] for e in entries if e["kind"] == "model")
        self._results = {e["call_id"]: e for e in entries if e["kind"] == "tool"}
        self._started = {e["call_id"]: e for e in entries if e["kind"] == "tool_started"}
        self._decided = {e["call_id"]: e for e in entries if e["kind"] == "tool_decision"}

    def next_reply(self) -> Message | None:
        """The next recorded model reply, or None when the record is used up."""
        return reply_message(self._replies.popleft()) if self._replies else None

    def result(self, call_id: str) -> str | None:
        """The recorded result of a tool call (what the model was given), if it finished."""
        entry = self._results.get(call_id)
        return None if entry is None else str(entry.get("result") or "")

    def decision(self, call_id: str) -> Mapping[str, Any] | None:
        """What a person decided about a held tool call (`granted`, `edited` with its
        `arguments`, `rejected` with a `reason`), if it was held and decided."""
        return self._decided.get(call_id)

    def started_unsafely(self, call_id: str) -> bool:
        """The call was made (and may have had its effect) but its result was never recorded."""
        entry = self._started.get(call_id)
        return entry is not None and not entry["safe"] and call_id not in self._results


def reply_data(message: Message) -> dict[str, Any]:
    """A model reply as it is recorded on `model.called`."""
    calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls]
    return {"content": message.content, "tool_calls": calls}


def reply_message(data: Mapping[str, Any]) -> Message:
    calls = tuple(
        ToolCall(id=str(c.get("id", "")), name=str(c["name"]), arguments=dict(c["arguments"]))
        for c in data.get("tool_calls") or ()
    )
    return Message("assistant", str(data.get("content") or ""), tool_calls=calls)


def call_key(turn: int, index: int) -> str:
    """Podium's own id for the `index`-th tool call of model turn `turn`: unlike the model's
    call ids (some servers repeat them, some send none), it is unique and the same on replay."""
    return f"t{turn}.{index}"
