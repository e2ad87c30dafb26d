"""The size cap on stored step outputs and the one marker that ends a capped text. An executor
that captured only part of a program's output marks it with the size the program really wrote;
the cap keeps that size when it has to cut again, so the stored marker is always the truth."""

from __future__ import annotations

import json
import re
from typing import Any

_MARKER = "…[truncated: kept {kept} of {whole} bytes]"
_MARKER_ROOM = 100  # the longest marker and its newline fit: only an output's tail is searched
_TRAILING_MARKER = re.compile(r"\n?…\[truncated: kept \d+ of (\d+|more than \d+) bytes\]\Z")


def truncation_marker(kept: int, total: int | None) -> str:
    """The line that ends capped output; `total` is None when the full size is unknown."""
    return _MARKER.format(kept=kept, whole=_whole(kept, total))


def with_marker(text: str, kept: int, total: int | None) -> str:
    """`text` followed by the truncation marker on a line of its own."""
    return _joined(text, truncation_marker(kept, total))


def cap_output(output: Any, limit_bytes: int) -> tuple[Any, bool]:
    """The output and whether it is truncated: a text form of it, marker included, of at most
    `limit_bytes` when its JSON exceeds the cap. A text its executor already capped and marked
    stays truncated, and keeps the size its marker states if it must be cut again."""
    if output is None or isinstance(output, bool | int | float):
        return output, False
    if isinstance(output, str):
        marked = _TRAILING_MARKER.search(output, max(len(output) - _MARKER_ROOM, 0))
        if marked is not None:
            return _recut(output, marked, limit_bytes), True
        if len(output) * 4 <= limit_bytes:
            return output, False
        text = output
    else:
        text = json.dumps(output, ensure_ascii=False, separators=(",", ":"))
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit_bytes:
        return output, False
    return _cut(data, str(len(data)), limit_bytes), True


def _recut(output: str, marked: re.Match[str], limit_bytes: int) -> str:
    if len(output) * 4 <= limit_bytes or len(output.encode()) <= limit_bytes:
        return output
    body = output[: marked.start()].encode("utf-8", errors="replace")
    return _cut(body, marked.group(1), limit_bytes)


def _cut(data: bytes, whole: str, limit_bytes: int) -> str:
    """The head of `data` and the marker, together at most `limit_bytes` bytes."""
    longest = _joined("x", _MARKER.format(kept=limit_bytes, whole=whole))
    room = max(limit_bytes - len(longest.encode()) + 1, 0)
    kept = data[:room].decode("utf-8", errors="ignore")
    return _joined(kept, _MARKER.format(kept=len(kept.encode()), whole=whole))


def _whole(kept: int, total: int | None) -> str:
    return f"{total}" if total is not None else f"more than {kept}"


def _joined(text: str, marker: str) -> str:
    sep = "" if not text or text.endswith("\n") else "\n"
    return f"{text}{sep}{marker}"
