"""Context passing (SPEC F6): the dependencies' outputs an agent sees, within limits, saying
what was cut."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from podium.spec.model import ContextLimits


def context_block(
    upstream: Mapping[str, Any], selection: str | Sequence[str], limits: ContextLimits
) -> str:
    """A Markdown section with each selected dependency's output, or "" when there is none."""
    if selection == "none" or not upstream:
        return ""
    names = list(upstream) if selection == "auto" else [n for n in selection if n in upstream]
    kept, dropped = names[: limits.max_dependencies], names[limits.max_dependencies :]
    parts, budget = [], limits.max_total_chars
    for name in kept:
        text = _as_text(upstream[name])
        room = min(limits.max_chars_per_dependency, max(budget, 0))
        shown = _cut(text, room)
        budget -= len(shown)
        parts.append(f"### {name}\n{shown}")
    if dropped:
        parts.append(
            f"({len(dropped)} more dependencies omitted to stay within the context limit: "
            f"{', '.join(dropped)})"
        )
    return "## Context from earlier steps\n\n" + "\n\n".join(parts)


def _cut(text: str, room: int) -> str:
    if len(text) <= room:
        return text
    if room <= 0:
        return f"[omitted: {len(text):,} characters; the context limit was reached]"
    return f"{text[:room]}\n[cut: {len(text) - room:,} more characters not shown]"


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)
