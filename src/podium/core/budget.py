"""Run budgets: the limits a run tree may spend (`Budget`), what it has spent (`BudgetUsage`), and
the pure checks that name the budget that broke. The runtime passes `now` in and records events."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from podium.spec.model import Budget

BudgetName = Literal[
    "tokens", "cost_usd", "steps", "depth", "wall_seconds", "parallelism", "loop_iterations"
]


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetUsage:
    """What the run tree has spent so far. `running` is the number of steps running now."""

    started_at: datetime
    tokens: int = 0
    cost_usd: float = 0.0
    steps_started: int = 0
    max_depth: int = 0
    running: int = 0
    loop_iterations: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Exceeded:
    """A budget that broke: its name, its limit and the figure that broke it.

    `stops_run` is False only for `parallelism`: that step waits for a slot, the run goes on.
    """

    budget: BudgetName
    limit: float
    figure: float
    message: str

    @property
    def stops_run(self) -> bool:
        return self.budget != "parallelism"


def add_usage(usage: BudgetUsage, tokens: int = 0, cost_usd: float = 0.0) -> BudgetUsage:
    """Count one usage report (a model call's total tokens and its cost)."""
    return replace(usage, tokens=usage.tokens + tokens, cost_usd=usage.cost_usd + cost_usd)


def step_started(usage: BudgetUsage, depth: int = 0) -> BudgetUsage:
    """Count a step or spawn started at `depth` (0 for the root workflow's steps)."""
    return replace(
        usage,
        steps_started=usage.steps_started + 1,
        max_depth=max(usage.max_depth, depth),
        running=usage.running + 1,
    )


def step_finished(usage: BudgetUsage) -> BudgetUsage:
    """A running step ended (whatever its outcome): it frees a parallelism slot."""
    return replace(usage, running=max(usage.running - 1, 0))


def elapsed_seconds(usage: BudgetUsage, now: datetime) -> float:
    return max((now - usage.started_at).total_seconds(), 0.0)


def check(budget: Budget, usage: BudgetUsage, now: datetime) -> Exceeded | None:
    """The first budget the spending so far has gone over, or None. Reaching a limit is fine."""
    figures: tuple[tuple[BudgetName, float], ...] = (
        ("tokens", usage.tokens),
        ("cost_usd", usage.cost_usd),
        ("steps", usage.steps_started),
        ("depth", usage.max_depth),
        ("wall_seconds", elapsed_seconds(usage, now)),
        ("loop_iterations", usage.loop_iterations),
    )
    return _first_over(budget, figures)


def check_before_iteration(budget: Budget, usage: BudgetUsage) -> Exceeded | None:
    """Would starting one more loop iteration (anywhere in the tree) break `loop_iterations`?"""
    return _first_over(budget, (("loop_iterations", usage.loop_iterations + 1),))


def check_before_start(
    budget: Budget, usage: BudgetUsage, now: datetime, depth: int = 0
) -> Exceeded | None:
    """Would starting one more step at `depth` break a budget? Parallelism comes last and does
    not stop the run (see `Exceeded.stops_run`): the step waits for a slot."""
    if spent := check(budget, usage, now):
        return spent
    figures: tuple[tuple[BudgetName, float], ...] = (
        ("steps", usage.steps_started + 1),
        ("depth", depth),
        ("parallelism", usage.running + 1),
    )
    return _first_over(budget, figures)


def slots(budget: Budget, usage: BudgetUsage) -> int | None:
    """How many more steps may start now under `parallelism`; None when it is unlimited."""
    if budget.parallelism is None:
        return None
    return max(budget.parallelism - usage.running, 0)


def _first_over(budget: Budget, figures: tuple[tuple[BudgetName, float], ...]) -> Exceeded | None:
    for name, figure in figures:
        limit: float | None = getattr(budget, name)
        if limit is not None and figure > limit:
            return _exceeded(name, limit, figure)
    return None


def _exceeded(name: BudgetName, limit: float, figure: float) -> Exceeded:
    message = f"budget {name} exceeded: {_show(name, figure)} of {_show(name, limit)}"
    return Exceeded(budget=name, limit=limit, figure=figure, message=message)


def _show(name: BudgetName, value: float) -> str:
    if name == "cost_usd":
        return f"${value:,.2f}" if round(value, 2) == round(value, 4) else f"${value:,.4f}"
    if name == "wall_seconds":
        return f"{value:,.1f}s".replace(".0s", "s")
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,}"
