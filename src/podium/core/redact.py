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
HOLD_CHARS = 64  # how far back a live stream looks for a header waiting for its value
# at the end of a live stream: an Authorization header whose value is still to come, or a
# dashed line still arriving (a key block's BEGIN or END line)
_OPEN_HEADER = re.compile(
    r"(?:[Aa]?uthorization|A?UTHORIZATION)\"?\s{0,8}[:=]?\s{0,8}\"?"
    r"(?:[Bb]earer|BEARER|[Bb]asic|BASIC|[Tt]oken|TOKEN)?\s{0,8}\Z|-{1,5}(?:[A-Z][^\n]{0,50})?\Z"
)
STREAM_CAP = 64 * 1024  # a stream held back this long is let out (redacted) anyway


class Redactor:
    """Replaces secrets in text. `values` maps a name to a value (`[redacted:NAME]`), `unnamed`
    are values marked `[redacted]`; values shorter than `MIN_LITERAL` characters are left alone."""

    __slots__ = ("_markers", "_regex", "spaced")

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
        self.spaced = max((len(v) for v in markers if any(c.isspace() for c in v)), default=0)
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
    """Redacts live output arriving in pieces: `feed` returns what may be shown now and keeps
    back what a secret split across two pieces could be part of — the text after the last
    whitespace (a token still arriving), an `Authorization:` header still waiting for its value
    or a key block's BEGIN line, any secret that reaches the tail (a key block until its END),
    and the last
    characters when a secret value holds whitespace — so it is seen whole; `flush` the rest.
    Text ending in whitespace is shown at once."""

    __slots__ = ("_held", "_hold", "_redactor")

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._held = ""
        self._hold = redactor.spaced  # the longest secret value holding whitespace

    def feed(self, text: str) -> str:
        buffer = self._held + text
        limit = len(buffer) - self._hold
        cut = max(buffer.rfind(c, 0, limit) for c in " \n\t\r") + 1 if limit > 0 else 0
        header = _OPEN_HEADER.search(buffer, max(0, len(buffer) - HOLD_CHARS))
        if header is not None:
            cut = min(cut, header.start())
        if cut <= 0:
            if len(buffer) < STREAM_CAP:
                self._held = buffer
                return ""
            cut = len(buffer) - max(self._hold, HOLD_CHARS)
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
