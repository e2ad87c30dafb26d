"""Podium's one exception tree. Every message says what went wrong and what to do next.

PodiumError
├── UsageError                 misuse of the API or CLI, raised before anything changes
│   ├── InputError             a bad --input / submit input value
│   └── ReportError            an attempt reported what an attempt may not report
├── SpecError                  an invalid workflow or plan; carries every problem with its path
├── StoreError                 the event store cannot be used
│   ├── StoreUnavailableError  cannot open / connect (bad path, permissions, newer schema)
│   ├── ConcurrencyError       an append lost a race (stale sequence number or lease epoch)
│   └── LeaseHeldError         another live process drives this run
├── RunError                   about one run; carries run_id (and step_id where it applies)
│   ├── RunNotFoundError
│   ├── RunExistsError
│   ├── StepNotFoundError
│   ├── InvalidTransitionError a control command that does not fit the run's state
│   └── ThreadBusyError        new input on a thread whose run is live (`on_busy: reject`)
├── ModelError                 a model call failed; says whether it is retryable, and where from
└── StepExecutionError         raised by executors; becomes a StepFailed event

Every error survives a pickle round trip (it may cross into or out of a worker process) with its
type, message and attributes: `PodiumError.__reduce__` rebuilds it from its message and
attributes without calling `__init__`, so subclasses get this whatever their constructor takes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class PodiumError(Exception):
    """Base class of every error Podium raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # BaseException pickles `self.args` (just the message) and calls `type(self)(*args)` on
        # load, which breaks every constructor that takes anything else. Make the instance from
        # the class without `__init__` instead; pickle then restores its attributes (notes too).
        return _new_error, (type(self), self.args), dict(vars(self))


def _new_error(cls: type[PodiumError], args: tuple[Any, ...]) -> PodiumError:
    """An instance of `cls` with `args`, made without `__init__`: the unpickling half of
    `PodiumError.__reduce__`."""
    return cls.__new__(cls, *args)


class UsageError(PodiumError):
    """The API or CLI was called wrongly; nothing was changed."""


class InputError(UsageError):
    """A run input is malformed or missing."""


class ReportError(UsageError):
    """An attempt reported something outside the closed set of reports, or malformed."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation problem: where it is (a dotted/indexed path) and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(PodiumError):
    """A workflow (or plan) is invalid. `problems` lists every problem found, each with its path."""

    def __init__(
        self, problems: Sequence[Problem], *, source: str | None = None, subject: str = "workflow"
    ) -> None:
        self.problems = list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        count = len(self.problems)
        head = f"{where}{count:,} problem{'s' if count != 1 else ''} in {subject}"
        super().__init__(head + "\n" + _listing(self.problems))


MAX_PROBLEMS_LISTED = 50
MAX_PROBLEM_CHARS = 300


def _listing(problems: Sequence[Problem]) -> str:
    """The first problems, each cut to a readable length, then the rest counted by kind."""
    lines = [f"  {_brief(str(p))}" for p in problems[:MAX_PROBLEMS_LISTED]]
    rest = problems[MAX_PROBLEMS_LISTED:]
    if rest:
        kinds = Counter(re.split(r"[\"'\d:;,(]", p.message, maxsplit=1)[0].strip() for p in rest)
        common = kinds.most_common(3)
        counted = [f"{n:,} {kind or 'other'}" for kind, n in common]
        if other := len(rest) - sum(n for _, n in common):
            counted.append(f"{other:,} other")
        more = f"{len(rest):,} more problem{'s' if len(rest) != 1 else ''}"
        lines.append(f"  … and {more} ({', '.join(counted)}); fix these and validate again")
    return "\n".join(lines)


def _brief(text: str) -> str:
    return text if len(text) <= MAX_PROBLEM_CHARS else text[: MAX_PROBLEM_CHARS - 1] + "…"


class StoreError(PodiumError):
    """The event store failed."""


class StoreUnavailableError(StoreError):
    """The store cannot be opened: bad location, permissions, corruption or a newer schema."""


class ConcurrencyError(StoreError):
    """An append was refused: the expected sequence number or the lease epoch is stale."""


class LeaseHeldError(StoreError):
    """Another live process holds this run's lease."""

    def __init__(self, run_id: str, owner: str) -> None:
        self.run_id = run_id
        self.owner = owner
        super().__init__(
            f"run {run_id} is being driven by {owner}; wait for it to finish or stop that "
            "process, then try again"
        )


class RunError(PodiumError):
    """An error about one run."""

    def __init__(self, message: str, *, run_id: str, step_id: str | None = None) -> None:
        self.run_id = run_id
        self.step_id = step_id
        super().__init__(message)


class RunNotFoundError(RunError):
    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"no run with id {run_id!r}; `podium runs` lists the runs in this store",
            run_id=run_id,
        )


class RunExistsError(RunError):
    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"a run with id {run_id!r} already exists; choose another --run-id or resume it "
            f"with `podium resume {run_id}`",
            run_id=run_id,
        )


class ThreadBusyError(RunError):
    """New input on a thread while a run on it is live (pending, running or waiting), and the
    thread's `on_busy` is `reject`: nothing was created."""

    def __init__(self, thread: str, run_id: str) -> None:
        self.thread = thread
        super().__init__(
            f"thread {thread} is busy: its run {run_id} is still live; wait for it to end, or "
            "ask again with --on-busy queue (start after it) or --on-busy interrupt (cancel it)",
            run_id=run_id,
        )


class StepNotFoundError(RunError):
    def __init__(self, run_id: str, step_id: str, known: Sequence[str]) -> None:
        shown = ", ".join(sorted(known)[:20]) or "none"
        super().__init__(
            f"run {run_id} has no step {step_id!r}; its steps are: {shown}",
            run_id=run_id,
            step_id=step_id,
        )


class InvalidTransitionError(RunError):
    """A control command (retry, skip, cancel, resume) does not fit the state of the run or step."""


class ModelError(PodiumError):
    """A model call failed. Timeouts, 429, 5xx and connection errors are retryable; other 4xx
    (bad request, auth, not found) are not. `provider` and `status` say where it came from."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        provider: str,
        status: int | None = None,
        error_type: str = "model",
    ) -> None:
        self.retryable = retryable
        self.provider = provider
        self.status = status
        self.error_type = error_type
        super().__init__(message)


class StepExecutionError(PodiumError):
    """Raised by an executor. `retryable` says whether the step's retry policy may try again."""

    def __init__(self, message: str, *, retryable: bool = True, error_type: str = "error") -> None:
        self.retryable = retryable
        self.error_type = error_type
        super().__init__(message)
