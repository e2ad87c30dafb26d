"""The redactor: every known secret value (named or not) and every common key format, replaced by
a marker in any string, any JSON-like value and any event, before it is applied, stored, streamed,
logged or exported. Pure: the runtime builds one per run from what the run recorded and the
environment (runtime/secrets.py); `PATTERNS_ONLY` knows the key formats alone."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from podium.spec.secrets import (
    KEEP_GROUPS,
    MARKER,
    MIN_LITERAL,
    PATTERNS,
    may_hold_key,
    pattern_source,
)

QUICK_LOOK_CHARS = 256  # longer text is looked at with `str.find` before the patterns run
HOLD_CHARS = 64  # a live stream's tail kept back: a secret split across deltas stays whole
STREAM_CAP = 64 * 1024  # a stream held back this long is let out (redacted) anyway


class Redactor:
    """Replaces secrets in text. `values` maps a name to a value (`[redacted:NAME]`), `unnamed`
    are values marked `[redacted]`; values shorter than `MIN_LITERAL` characters are left alone."""

    __slots__ = ("_markers", "_regex", "longest")

    def __init__(
        self, values: Mapping[str, str] | None = None, unnamed: Iterable[str] = ()
    ) -> None:
        markers: dict[str, str] = {}
        for value in unnamed:
            if len(value) >= MIN_LITERAL:
                markers[value] = MARKER
        for name, value in (values or {}).items():
            if len(value) >= MIN_LITERAL:
                markers[value] = f"[redacted:{name}]"
        self._markers = markers
        self.longest = max(map(len, markers), default=0)
        if markers:
            self._regex = re.compile(pattern_source(sorted(markers, key=len, reverse=True)))
        else:
            self._regex = PATTERNS

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Redactor) and other._markers == self._markers

    def __hash__(self) -> int:
        return hash(frozenset(self._markers.items()))

    @property
    def literals(self) -> int:
        return len(self._markers)

    def text(self, text: str) -> str:
        """`text` with every secret replaced (the same object when there is none)."""
        if len(text) > QUICK_LOOK_CHARS:  # long text: a cheaper look first
            if not may_hold_key(text) and not any(v in text for v in self._markers):
                return text
        elif self._regex.search(text) is None:
            return text
        return self._regex.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        if match.lastgroup == "lit":
            return self._markers[match.group("lit")]
        for keep, value in KEEP_GROUPS:
            if match.group(value) is not None:
                return match.group(keep) + MARKER
        return MARKER

    def value(self, value: Any) -> Any:
        """A JSON-like value with every string redacted (the same object when nothing changed)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            items = [
                (self.text(k) if isinstance(k, str) else k, self.value(v)) for k, v in value.items()
            ]
            if any(
                a is not k or b is not v
                for (a, b), (k, v) in zip(items, value.items(), strict=True)
            ):
                return dict(items)
            return value
        if isinstance(value, list | tuple):
            items = [self.value(v) for v in value]
            if any(a is not b for a, b in zip(items, value, strict=True)):
                return type(value)(items) if isinstance(value, tuple) else items
            return value
        if isinstance(value, BaseModel):
            return self.model(value)
        return value

    def model(self, model: BaseModel) -> Any:
        """A frozen model (an event) with every string field redacted: itself when clean."""
        update = {}
        for name, field_value in model.__dict__.items():
            redacted = self.value(field_value)
            if redacted is not field_value:
                update[name] = redacted
        return model.model_copy(update=update) if update else model

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, replacement) of each secret in `text`, in order."""
        return [(m.start(), m.end(), self._replace(m)) for m in self._regex.finditer(text)]


class StreamRedactor:
    """Redacts live output arriving in pieces: `feed` returns what may be shown now, keeping back
    a tail (to the last whitespace at least `HOLD_CHARS` from the end, and any secret that
    reaches the tail) so a secret split across two pieces is seen whole; `flush` the rest."""

    __slots__ = ("_held", "_hold", "_redactor")

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._held = ""
        self._hold = max(HOLD_CHARS, redactor.longest)

    def feed(self, text: str) -> str:
        buffer = self._held + text
        limit = len(buffer) - self._hold
        if limit <= 0:
            self._held = buffer
            return ""
        cut = max(buffer.rfind(c, 0, limit) for c in " \n\t\r") + 1
        if cut <= 0:
            if len(buffer) < STREAM_CAP:
                self._held = buffer
                return ""
            cut = limit
        shown, self._held = self._split(buffer, cut)
        return shown

    def flush(self) -> str:
        rest, self._held = self._held, ""
        return self._redactor.text(rest) if rest else ""

    def _split(self, buffer: str, cut: int) -> tuple[str, str]:
        pieces: list[str] = []
        at = 0
        for start, end, replacement in self._redactor.spans(buffer):
            if start >= cut:
                break
            if end >= cut:  # it reaches the tail: keep it back whole
                cut = start
                break
            pieces += [buffer[at:start], replacement]
            at = end
        pieces.append(buffer[at:cut])
        return "".join(pieces), buffer[cut:]


PATTERNS_ONLY = Redactor()

__all__ = ["PATTERNS_ONLY", "Redactor", "StreamRedactor"]
