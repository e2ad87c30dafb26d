"""Every error in podium.errors survives a pickle round trip: same type, message and attributes.

Errors cross process boundaries (execution backends run steps in other processes), so a class
added to podium.errors is picked up here automatically: one whose constructor takes more than a
message needs an entry in EXAMPLES, and the test says so until it has one.
"""

from __future__ import annotations

import copy
import inspect
import pickle
import re
from collections.abc import Callable

import pytest

from podium import errors
from podium.errors import (
    ConcurrencyError,
    InputError,
    InvalidTransitionError,
    LeaseHeldError,
    ModelError,
    PodiumError,
    Problem,
    ReportError,
    RunError,
    RunExistsError,
    RunNotFoundError,
    SpecError,
    StepExecutionError,
    StepNotFoundError,
    StoreError,
    StoreUnavailableError,
    ThreadBusyError,
    UsageError,
)

CLASSES = sorted(
    (
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == errors.__name__
    ),
    key=lambda cls: cls.__name__,
)

# Representative instances, with every attribute set to something other than its default.
EXAMPLES: dict[type[BaseException], Callable[[], BaseException]] = {
    SpecError: lambda: SpecError(
        [Problem("steps[0].kind", 'unknown kind "shel"'), Problem("", "no steps")],
        source="w.yaml",
        subject="plan",
    ),
    LeaseHeldError: lambda: LeaseHeldError("run_1", "worker-7 (pid 4242)"),
    RunError: lambda: RunError("run run_1 is parked", run_id="run_1", step_id="b"),
    RunNotFoundError: lambda: RunNotFoundError("run_1"),
    RunExistsError: lambda: RunExistsError("run_1"),
    ThreadBusyError: lambda: ThreadBusyError("support", "run_1"),
    StepNotFoundError: lambda: StepNotFoundError("run_1", "ghost", ["a", "b"]),
    InvalidTransitionError: lambda: InvalidTransitionError(
        "step b already succeeded; nothing to retry", run_id="run_1", step_id="b"
    ),
    ModelError: lambda: ModelError(
        "openai:gpt-4o (step s): HTTP 429 rate limited; retryable",
        retryable=True,
        provider="openai",
        status=429,
        error_type="rate_limit",
    ),
    StepExecutionError: lambda: StepExecutionError(
        "card declined", retryable=False, error_type="declined"
    ),
}


def example(cls: type[BaseException]) -> BaseException:
    if cls in EXAMPLES:
        return EXAMPLES[cls]()
    own = cls.__mro__[: cls.__mro__.index(Exception)]
    if any("__init__" in vars(base) for base in own):
        pytest.fail(f"add a representative {cls.__name__}(...) to EXAMPLES in {__file__}")
    return cls(f"{cls.__name__}: what went wrong; what to do next")


def same(loaded: BaseException, original: BaseException) -> None:
    assert type(loaded) is type(original)
    assert str(loaded) == str(original)
    assert loaded.args == original.args
    assert vars(loaded) == vars(original)


def test_the_tree_is_what_this_test_expects() -> None:
    assert set(CLASSES) == {
        PodiumError,
        UsageError,
        InputError,
        ReportError,
        SpecError,
        StoreError,
        StoreUnavailableError,
        ConcurrencyError,
        LeaseHeldError,
        RunError,
        RunNotFoundError,
        RunExistsError,
        StepNotFoundError,
        InvalidTransitionError,
        ThreadBusyError,
        ModelError,
        StepExecutionError,
    }, "a class was added to or removed from podium.errors: update EXAMPLES and this set"
    assert all(issubclass(cls, PodiumError) for cls in CLASSES)


def test_every_class_is_named_in_the_docstring_tree() -> None:
    tree = errors.__doc__ or ""
    assert [cls.__name__ for cls in CLASSES if not re.search(rf"\b{cls.__name__}\b", tree)] == []


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_round_trips_through_pickle(cls: type[BaseException], protocol: int) -> None:
    original = example(cls)
    same(pickle.loads(pickle.dumps(original, protocol=protocol)), original)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_copies_are_equal(cls: type[BaseException]) -> None:
    original = example(cls)
    same(copy.copy(original), original)
    same(copy.deepcopy(original), original)


def test_attributes_come_back_as_given() -> None:
    spec = pickle.loads(pickle.dumps(EXAMPLES[SpecError]()))
    assert isinstance(spec, SpecError)
    assert spec.source == "w.yaml"
    assert spec.problems == [
        Problem("steps[0].kind", 'unknown kind "shel"'),
        Problem("", "no steps"),
    ]
    assert str(spec).startswith("w.yaml: 2 problems in plan\n")

    lease = pickle.loads(pickle.dumps(EXAMPLES[LeaseHeldError]()))
    assert isinstance(lease, LeaseHeldError)
    assert (lease.run_id, lease.owner) == ("run_1", "worker-7 (pid 4242)")

    missing = pickle.loads(pickle.dumps(RunNotFoundError("run_1")))
    assert isinstance(missing, RunNotFoundError)
    assert (missing.run_id, missing.step_id) == ("run_1", None)
    assert str(missing).startswith("no run with id 'run_1'")

    model = pickle.loads(pickle.dumps(EXAMPLES[ModelError]()))
    assert isinstance(model, ModelError)
    assert (model.retryable, model.provider, model.status, model.error_type) == (
        True,
        "openai",
        429,
        "rate_limit",
    )

    step = pickle.loads(pickle.dumps(EXAMPLES[StepExecutionError]()))
    assert isinstance(step, StepExecutionError)
    assert (step.retryable, step.error_type) == (False, "declined")


def test_notes_and_attributes_added_later_survive() -> None:
    original = StepExecutionError("boom", retryable=False)
    original.add_note("while running step b")
    original.step_id = "b"  # type: ignore[attr-defined]
    loaded = pickle.loads(pickle.dumps(original))
    assert loaded.__notes__ == ["while running step b"]
    assert loaded.step_id == "b"


class _ElsewhereError(UsageError):
    """A subclass outside podium.errors with a keyword-only constructor (like ToolError)."""

    def __init__(self, tool: str, *, why: str) -> None:
        self.tool = tool
        self.why = why
        super().__init__(f"tool {tool} failed: {why}")


def test_subclasses_defined_elsewhere_round_trip_too() -> None:
    original = _ElsewhereError("search", why="timed out")
    same(pickle.loads(pickle.dumps(original)), original)


def test_problem_round_trips() -> None:
    problem = Problem("steps[1].needs", 'unknown step "x"')
    assert pickle.loads(pickle.dumps(problem)) == problem
