"""The size cap on stored step outputs: an output above the cap is kept truncated, with a marker."""

from __future__ import annotations

import json
from typing import Any

MARKER = "…[truncated: output was {total} bytes, kept {kept}]"


def cap_output(output: Any, limit_bytes: int) -> tuple[Any, bool]:
    """Return the output, or a truncated text form of it when its JSON exceeds `limit_bytes`."""
    if output is None or isinstance(output, bool | int | float):
        return output, False
    if isinstance(output, str):
        if len(output) * 4 <= limit_bytes:
            return output, False
        text = output
    else:
        text = json.dumps(output, ensure_ascii=False, separators=(",", ":"))
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit_bytes:
        return output, False
    kept = data[:limit_bytes].decode("utf-8", errors="ignore")
    return kept + MARKER.format(total=len(data), kept=len(kept.encode())), True
