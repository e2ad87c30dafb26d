"""A run's recorded model replies as a scripted-model script: `podium script RUN` writes it, and
`podium run FILE --model scripted:SCRIPT` replays that run offline and deterministically. Each
step's replies are listed in the order that step received them (`steps:`), so the replay gives
every step the same answers whatever order concurrent steps call in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from podium.core import events as ev
from podium.store.base import StoredEvent


def script_of(run_id: str, events: Iterable[StoredEvent]) -> dict[str, Any]:
    """The scripted-model document of the run's recorded replies (empty `steps` when none)."""
    steps: dict[str, list[dict[str, Any]]] = {}
    models: list[str] = []
    for stored in events:
        event = stored.event
        if not isinstance(event, ev.ModelCalled) or event.reply is None:
            continue
        steps.setdefault(event.step_id, []).append(_turn(event))
        if event.model not in models:
            models.append(event.model)
    return {
        "model": f"replay of {run_id}" + (f" ({', '.join(models)})" if models else ""),
        "steps": steps,
    }


def _turn(event: ev.ModelCalled) -> dict[str, Any]:
    reply = event.reply or {}
    turn: dict[str, Any] = {}
    calls = reply.get("tool_calls") or []
    if calls:
        turn["tool_calls"] = [
            {"id": c.get("id") or "", "name": c["name"], "arguments": c.get("arguments") or {}}
            for c in calls
        ]
    content = reply.get("content") or ""
    if content or not calls:
        turn["content"] = content
    turn["usage"] = {"input_tokens": event.input_tokens, "output_tokens": event.output_tokens}
    return turn
