"""Growing a run's graph while it runs: the child steps plan steps adopt and loop steps repeat
join the run here, as ordinary steps the scheduler runs like any other, and leave it here when a
retried loop starts over."""

from __future__ import annotations

import heapq

from podium.core.graph import threshold
from podium.core.joins import make_ready
from podium.core.state import RunState, StepState
from podium.spec.model import StepBase


def add_child(state: RunState, parent: StepState, spec: StepBase) -> StepState:
    """Add `spec` (its id and needs already namespaced under `parent`) to the run as a child of
    `parent`, ranked like it; ready at once when it needs nothing."""
    graph = state.graph
    graph.dependents[spec.id] = []
    for need in spec.needs:
        graph.dependents[need].append(spec.id)
    graph.quorum[spec.id] = threshold(spec.join, len(spec.needs))
    graph.rank[spec.id] = parent.rank
    child = state.steps[spec.id] = StepState(
        spec=spec, index=len(state.steps), rank=parent.rank, parent=parent.id
    )
    state.unfinished += 1
    state.specs_changed()
    if not spec.needs:
        make_ready(state, child)
    return child


def remove_descendants(state: RunState, parent_id: str) -> None:
    """Take every step namespaced under `parent_id` (children, their children…) out of the run:
    its log keeps them, the run's state and views no longer do."""
    prefix = f"{parent_id}."
    gone = {sid for sid in state.steps if sid.startswith(prefix)}
    if not gone:
        return
    state.specs_changed()
    for sid in gone:
        step = state.steps.pop(sid)
        if not step.terminal:
            state.unfinished -= 1
        for table in (state.graph.dependents, state.graph.quorum, state.graph.rank):
            table.pop(sid, None)
        state.running.discard(sid)
        state.retrying.pop(sid, None)
        state.doomed.pop(sid, None)
        state.losers.discard(sid)
        state.approvals.pop(sid, None)
        state.loops.pop(sid, None)
        state.plans.pop(sid, None)
        state.settled_plans.pop(sid, None)
    for dependents in state.graph.dependents.values():
        dependents[:] = [d for d in dependents if d not in gone]
    state.ready = [entry for entry in state.ready if entry[2] not in gone]
    heapq.heapify(state.ready)
