"""Typed identifiers and their generators."""

from __future__ import annotations

import os
import time
from typing import NewType

RunId = NewType("RunId", str)
"""A run's id: what `new_run_id` makes and `Engine.submit` returns (a plain `str` at run time)."""

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _b32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_run_id() -> RunId:
    """A sortable id: 10 chars of milliseconds then 6 random chars, e.g. `run_01jd3k4x5mq8w2`."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(4), "big")
    return RunId(f"run_{_b32(millis, 10)}{_b32(rand, 6)}")


def idempotency_key(run_id: str, step_id: str, generation: int = 0) -> str:
    """The key an in-flight step keeps across crashes; a manual retry starts a new generation."""
    base = f"{run_id}:{step_id}"
    return base if generation == 0 else f"{base}:{generation}"
