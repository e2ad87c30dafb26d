"""What the project configuration says about threads and routing (SPEC F17): `[routing]` (rules
tried in order, a router agent, a default agent) and `[threads]` (what new input on a busy
thread does, how much of the conversation an agent sees). Validated at load, like the rest of
`podium.toml`; the agent names are checked against the catalog when a message is routed."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from podium.errors import UsageError
from podium.spec.patterns import PatternTimeout, compile_problem, search

OnBusy = Literal["reject", "queue", "interrupt"]
ON_BUSY: tuple[OnBusy, ...] = ("reject", "queue", "interrupt")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RoutingRule(_Strict):
    """`[[routing.rules]]`: a message that `pattern` (a Python regular expression, searched
    anywhere in the message, case-insensitively) matches goes to `agent`."""

    pattern: str = Field(min_length=1)
    agent: str = Field(min_length=1, max_length=200)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        problem = compile_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    def matches(self, message: str) -> bool:
        """Whether the pattern is found in `message`, matched with a time limit
        (`podium.spec.patterns`): a UsageError when it backtracks catastrophically on it."""
        try:
            return search(self.pattern, message, ignore_case=True)
        except PatternTimeout as exc:
            raise UsageError(f"[[routing.rules]] in the project config: {exc}") from None


class RoutingConfig(_Strict):
    """`[routing]`: which agent answers a message sent without `--agent`. The `rules` are tried
    in order; if none matches, the `router` agent (if any) chooses among the catalog's agents;
    else `default`. An agent the policy blocks is never chosen."""

    rules: list[RoutingRule] = Field(default_factory=list)
    router: str | None = Field(None, min_length=1, max_length=200)
    default: str | None = Field(None, min_length=1, max_length=200)

    @property
    def configured(self) -> bool:
        return bool(self.rules) or self.router is not None or self.default is not None


class ThreadsConfig(_Strict):
    """`[threads]`: `on_busy` is what a new message does while a run on its thread is live
    (pending, running or waiting): `reject` it, `queue` it (its run starts when the live one
    ends) or `interrupt` the live run. The agent sees at most `history_messages` earlier
    exchanges and `history_chars` characters of them, the newest kept."""

    on_busy: OnBusy = "reject"
    history_messages: int = Field(20, ge=0, le=1000)
    history_chars: int = Field(16_000, ge=100, le=4_000_000)
