"""Python's cap on the digits of an integer read from text (CVE-2020-10735), as a clear problem
instead of a raw ValueError wherever documents or inputs are read."""

from __future__ import annotations

import sys


def too_long(digits: int) -> bool:
    """Whether Python refuses to read an integer of `digits` digits."""
    limit = sys.get_int_max_str_digits()
    return limit > 0 and digits > limit


def long_integer(digits: int) -> str:
    return (
        f"an integer of {digits:,} digits; numbers may have at most "
        f"{sys.get_int_max_str_digits():,} digits; write a smaller number, or quote it as text"
    )


def read_integer(text: str) -> int:
    """`int(text)`, or a ValueError saying the number is too long."""
    digits = len(text.strip().lstrip("+-").replace("_", ""))
    if too_long(digits):
        raise ValueError(long_integer(digits))
    return int(text)
