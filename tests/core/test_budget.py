"""Budgets: parsing, pure usage updates, and the checks that name the budget and the figure."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from podium.core.budget import (
    Budget,
    BudgetUsage,
    add_usage,
    check,
    check_before_start,
    slots,
    step_finished,
    step_started,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)


usage = functools.partial(BudgetUsage, started_at=T0)


def test_budget_parses_durations_and_leaves_unset_limits_unlimited() -> None:
    budget = Budget.model_validate({"tokens": 10_000, "wall_seconds": "30m"})
    assert budget.wall_seconds == 1800.0
    assert budget.cost_usd is None
    assert budget.parallelism is None


@pytest.mark.parametrize(
    "doc",
    [{"tokens": 0}, {"cost_usd": -1}, {"steps": 0}, {"depth": 0}, {"wall_seconds": "0s"}],
)
def test_budget_limits_must_be_positive(doc: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Budget.model_validate(doc)


def test_budget_refuses_unknown_fields_and_bad_durations() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Budget.model_validate({"token": 5})
    with pytest.raises(ValidationError, match="not a duration"):
        Budget.model_validate({"wall_seconds": "soon"})


def test_budget_is_frozen() -> None:
    with pytest.raises(ValidationError):
        Budget(tokens=5).tokens = 6  # type: ignore[misc]


def test_updates_return_new_values() -> None:
    start = usage()
    spent = add_usage(start, tokens=120, cost_usd=0.25)
    started = step_started(step_started(spent, depth=2), depth=1)
    finished = step_finished(started)
    assert start == usage()
    assert (spent.tokens, spent.cost_usd) == (120, 0.25)
    assert (started.steps_started, started.max_depth, started.running) == (2, 2, 2)
    assert finished.running == 1
    assert step_finished(usage()).running == 0


def test_reaching_a_limit_is_not_exceeding_it() -> None:
    budget = Budget(tokens=10_000, cost_usd=1.0, wall_seconds=60)
    assert check(budget, usage(tokens=10_000, cost_usd=1.0), T0 + timedelta(seconds=60)) is None


def test_tokens_exceeded_names_the_budget_and_the_figure() -> None:
    exceeded = check(Budget(tokens=10_000), usage(tokens=10_240), T0)
    assert exceeded is not None
    assert (exceeded.budget, exceeded.limit, exceeded.figure) == ("tokens", 10_000, 10_240)
    assert exceeded.message == "budget tokens exceeded: 10,240 of 10,000"
    assert exceeded.stops_run


def test_cost_and_wall_time_messages() -> None:
    cost = check(Budget(cost_usd=0.5), usage(cost_usd=0.5213), T0)
    wall = check(Budget(wall_seconds="30m"), usage(), T0 + timedelta(seconds=1850.25))
    assert cost is not None
    assert cost.message == "budget cost_usd exceeded: $0.5213 of $0.50"
    assert wall is not None
    assert (wall.budget, wall.figure) == ("wall_seconds", 1850.25)
    assert wall.message == "budget wall_seconds exceeded: 1,850.2s of 1,800s"


def test_no_budget_never_breaks() -> None:
    spent = usage(tokens=10**9, cost_usd=10**6, steps_started=10**6, max_depth=50, running=99)
    assert check(Budget(), spent, T0 + timedelta(days=30)) is None
    assert check_before_start(Budget(), spent, T0, depth=50) is None


def test_check_before_start_counts_the_step_about_to_start() -> None:
    budget = Budget(steps=3)
    assert check_before_start(budget, usage(steps_started=2), T0) is None
    exceeded = check_before_start(budget, usage(steps_started=3), T0)
    assert exceeded is not None
    assert exceeded.message == "budget steps exceeded: 4 of 3"


def test_check_before_start_refuses_a_step_nested_too_deep() -> None:
    budget = Budget(depth=2)
    assert check_before_start(budget, usage(), T0, depth=2) is None
    exceeded = check_before_start(budget, usage(), T0, depth=3)
    assert exceeded is not None
    assert (exceeded.budget, exceeded.figure) == ("depth", 3)


def test_check_before_start_reports_what_is_already_spent_first() -> None:
    budget = Budget(tokens=100, parallelism=1)
    exceeded = check_before_start(budget, usage(tokens=101, running=1), T0)
    assert exceeded is not None
    assert exceeded.budget == "tokens"


def test_check_before_start_refuses_a_late_start() -> None:
    exceeded = check_before_start(Budget(wall_seconds=10), usage(), T0 + timedelta(seconds=11))
    assert exceeded is not None
    assert exceeded.budget == "wall_seconds"


def test_parallelism_makes_a_step_wait_without_stopping_the_run() -> None:
    budget = Budget(parallelism=2)
    assert check_before_start(budget, usage(running=1), T0) is None
    exceeded = check_before_start(budget, usage(running=2), T0)
    assert exceeded is not None
    assert exceeded.budget == "parallelism"
    assert not exceeded.stops_run
    assert check(budget, usage(running=2), T0) is None


def test_slots_are_the_parallelism_left() -> None:
    assert slots(Budget(), usage(running=5)) is None
    assert slots(Budget(parallelism=3), usage(running=1)) == 2
    assert slots(Budget(parallelism=3), usage(running=4)) == 0
