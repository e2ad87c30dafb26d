"""The fields every part of a workflow shares: durations (`30`, `"500ms"`, `"5m"`), the NUL
check for OS text, the frozen pydantic base, the retry policy, budgets and quorum joins."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_T = TypeVar("_T")


def parse_duration(value: object) -> float | None:
    """`30`, `2.5`, `"500ms"`, `"30s"`, `"5m"`, `"1h"` -> seconds."""
    if value is None or isinstance(value, bool):
        return None if value is None else _bad_duration(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return float(match.group(1)) * _UNITS[match.group(2)]
    return _bad_duration(value)


def _no_nul(value: _T) -> _T:
    """`value` (text, or a list or mapping of texts) if no text holds a NUL character, which no
    path, argument or environment variable can."""
    texts: list[object] = [value]
    if isinstance(value, list):
        texts = list(value)
    elif isinstance(value, dict):
        texts = [*value, *value.values()]
    if any(isinstance(text, str) and "\0" in text for text in texts):
        raise ValueError(
            "contains a NUL character (\\0), which no path, argument or variable can hold; "
            "remove it"
        )
    return value


def _bad_duration(value: object) -> float:
    raise ValueError(f"{value!r} is not a duration; write seconds (30) or 500ms, 30s, 5m, 1h")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryPolicy(_Frozen):
    """Exponential backoff with jitter. `retry: 3` is short for `retry: {max_attempts: 3}`."""

    max_attempts: int = Field(1, ge=1, le=100)
    initial_delay_seconds: float = Field(1.0, ge=0, le=86_400)
    backoff: float = Field(2.0, ge=1, le=10)
    max_delay_seconds: float = Field(300.0, ge=0, le=86_400)
    jitter: float = Field(0.1, ge=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, int) and not isinstance(data, bool):
            return {"max_attempts": data}
        return data

    @field_validator("initial_delay_seconds", "max_delay_seconds", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)

    def delay_seconds(self, attempt: int, unit_random: float) -> float:
        """Delay before attempt `attempt + 1`, given a number in [0, 1) for the jitter."""
        base = self.initial_delay_seconds * self.backoff ** max(attempt - 1, 0)
        spread = 1.0 + self.jitter * (2.0 * unit_random - 1.0)
        return min(self.max_delay_seconds, base * spread)


class Budget(_Frozen):
    """Limits shared by a run's whole tree of plans and sub-workflows; unset means unlimited.

    `steps` counts steps and spawns started anywhere in the tree; `depth` is plan/sub-workflow
    nesting (the root workflow's steps are at depth 0); `parallelism` caps steps running at once
    across the tree; `wall_seconds` accepts durations such as `"30m"`; `loop_iterations`
    counts loop iterations started anywhere in the tree.
    """

    tokens: int | None = Field(None, gt=0)
    cost_usd: float | None = Field(None, gt=0)
    steps: int | None = Field(None, gt=0)
    depth: int | None = Field(None, gt=0)
    wall_seconds: float | None = Field(None, gt=0)
    parallelism: int | None = Field(None, gt=0)
    loop_iterations: int | None = Field(None, gt=0)

    @field_validator("wall_seconds", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)


class Quorum(_Frozen):
    quorum: int = Field(ge=1)
