"""The static shape of a workflow: dependents, join thresholds, and each step's priority rank."""

from __future__ import annotations

from dataclasses import dataclass

from podium.spec.model import Quorum, Workflow


@dataclass(frozen=True, slots=True)
class Graph:
    dependents: dict[str, list[str]]
    quorum: dict[str, int]
    rank: dict[str, float]
    order: list[str]


def build_graph(workflow: Workflow) -> Graph:
    """`rank` is the longest remaining path by `expected_seconds`, this step included."""
    dependents: dict[str, list[str]] = {s.id: [] for s in workflow.steps}
    quorum: dict[str, int] = {}
    for step in workflow.steps:
        for need in step.needs:
            dependents[need].append(step.id)
        quorum[step.id] = threshold(step.join, len(step.needs))
    order = _topological(workflow, dependents)
    expected = {s.id: s.expected_seconds for s in workflow.steps}
    rank: dict[str, float] = {}
    for step_id in reversed(order):
        below = max((rank[d] for d in dependents[step_id]), default=0.0)
        rank[step_id] = expected[step_id] + below
    return Graph(dependents=dependents, quorum=quorum, rank=rank, order=order)


def threshold(join: object, needs: int) -> int:
    """How many of its `needs` a step with this `join` waits for."""
    if isinstance(join, Quorum):
        return min(join.quorum, needs)
    return 1 if join == "any" and needs else needs


def _topological(workflow: Workflow, dependents: dict[str, list[str]]) -> list[str]:
    remaining = {s.id: len(s.needs) for s in workflow.steps}
    queue = [s.id for s in workflow.steps if not s.needs]
    order: list[str] = []
    while queue:
        step_id = queue.pop()
        order.append(step_id)
        for dep in dependents[step_id]:
            remaining[dep] -= 1
            if remaining[dep] == 0:
                queue.append(dep)
    if len(order) != len(remaining):
        raise ValueError("workflow has a cycle; validate it before building its graph")
    return order
