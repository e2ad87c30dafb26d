"""Child runs of `workflow` steps, in the runtime: creating them, driving them, telling parents
how they ended, and stopping them with their parent.

- **Creating.** When a parent's turn that records `child.started` is committed, the engine
  driving the parent loads the child workflow (a file or a registered name), caps its budget by
  the pool's remainder recorded on the event, and creates the child run under the id the event
  names, already leased to itself, with `parent` and `depth` on its `run.created`; then it
  drives it like any run. A crash between the two commits leaves the event without its run: the
  next driver of the parent creates it then (`start`), under the same id, once.
- **Ending.** After a child's completion is committed its driver posts a `child` signal to the
  parent (its outcome, outputs and spending) and wakes the parent (poked here, else resumed
  here). A crash between that commit and the signal is healed by the parent's next driver,
  which reads each waiting child's stored state when it starts.
- **Stopping.** While the parent stops (cancel, fail-fast, a budget) every live child gets a
  `cancel` signal; the parent completes when the children's ends are recorded.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any, Protocol

from podium.clock import Clock
from podium.core import events as ev
from podium.core.children import ended_of, merge_budgets, waiting_link
from podium.core.fold import new_state
from podium.core.happenings import ChildEnded, Happening
from podium.core.state import ChildLink, RunState
from podium.errors import LeaseHeldError, PodiumError, RunExistsError, RunNotFoundError
from podium.runtime.reads import committed_state
from podium.runtime.runner import LeasePolicy
from podium.runtime.services import AgentServices
from podium.runtime.submission import new_run
from podium.spec.model import Workflow
from podium.spec.subworkflows import Registry, resolve
from podium.store.base import EventStore, Lease, SignalKind


class Host(Protocol):
    """What child runs need of the engine (runtime/engine.py)."""

    store: EventStore
    services: AgentServices
    secret_inputs: dict[str, str]
    _clock: Clock
    _owner: str
    _policy: LeasePolicy

    @property
    def mode(self) -> str: ...

    def is_driving(self, run_id: str) -> bool: ...

    async def resume(self, run_id: str) -> RunState: ...

    async def _signal(self, run_id: str, kind: SignalKind, payload: dict[str, Any]) -> bool: ...

    def _spawn(self, state: RunState, lease: Lease, *, resumed: bool) -> None: ...


class ChildRuns:
    """The engine's child-run hooks, called by each `RunDriver` it runs."""

    def __init__(self, host: Host, workflows: Registry | None = None) -> None:
        self._host = host
        self.workflows: dict[str, str | os.PathLike[str] | Workflow] = dict(workflows or {})
        self._told: set[str] = set()  # children this engine sent a cancel signal

    # ------------------------------------------------------------------ driver hooks

    async def on_start(self, state: RunState) -> list[Happening]:
        """A driver (re)starts `state`: create the children its log names but the store lacks,
        drive the live ones nobody drives, and return how the finished ones ended."""
        ended: list[Happening] = []
        for link in state.live_children:
            found = await self._child_state(link.run_id)
            if found is None:
                ended += await self._create(state, link)
                continue
            outcome = ended_of(found)
            if outcome is not None:
                ended.append(outcome)
            elif not self._host.is_driving(link.run_id):
                with contextlib.suppress(LeaseHeldError):
                    await self._host.resume(link.run_id)
        await self._stop_children(state)
        return ended

    async def after_commit(self, state: RunState, events: Sequence[ev.Event]) -> list[Happening]:
        """A turn of `state` was committed: create the children it started, stop the children
        of a stopping run, and tell the parent of a finished child."""
        found: list[Happening] = []
        for event in events:
            if isinstance(event, ev.ChildStarted):
                found += await self._create(state, _link(state, event))
        await self._stop_children(state)
        if state.outcome is not None and state.parent is not None:
            await self._tell_parent(state)
        return found

    async def finished(self, state: RunState) -> None:
        """`Engine.resume` of a finished child: tell its parent if the parent still waits for
        it (the driver that finished it died before it could)."""
        if state.parent is not None and state.outcome is not None:
            await self._tell_parent(state)

    # ------------------------------------------------------------------------ reads

    async def awaits_person(self, state: RunState) -> list[tuple[str, RunState]]:
        """The descendants of `state` that wait for a person (each with the step of this run
        it belongs under) — what a parked `podium run` names — or [] while any descendant is
        still driven here (it may finish, and the tree go on, without anyone)."""
        found: list[tuple[str, RunState]] = []
        for link in state.live_children:
            child = await self._child_state(link.run_id)
            if self._host.is_driving(link.run_id):
                return []
            if child is None:
                continue
            if child.awaits_person:
                found.append((link.step_id, child))
            below = await self.awaits_person(child)
            if child.live_children and not below and not child.awaits_person:
                return []  # its own children still run (or will be driven)
            found += [(link.step_id, grand) for _, grand in below]
        return found

    async def parked_for_person(self, state: RunState) -> bool:
        """For `Engine.wait`: a run waiting for its children returns when a descendant waits
        for a person. A parent whose child has ended but which nobody drives (the wake-up was
        lost to a crash or a race for its lease) is resumed here."""
        if not state.live_children or state.outcome is not None:
            return False
        if self._host.mode != "control" and await self.stalled(state):
            with contextlib.suppress(LeaseHeldError):
                await self._host.resume(state.run_id)
            return False
        return bool(await self.awaits_person(state))

    async def stalled(self, state: RunState) -> bool:
        """True when `state` waits for children and one of them has ended (or was never
        created) but nobody drives the parent to record it: the caller resumes the parent."""
        for link in state.live_children:
            child = await self._child_state(link.run_id)
            if child is None or child.outcome is not None:
                return True
        return False

    # -------------------------------------------------------------------- internals

    async def _child_state(self, run_id: str) -> RunState | None:
        try:
            return await committed_state(self._host.store, run_id)
        except RunNotFoundError:
            return None

    async def _create(self, parent: RunState, link: ChildLink) -> list[Happening]:
        """Create and drive the child run `link` names; a child that cannot be created (its
        file changed since the run was submitted, its inputs no longer fit) fails the step."""
        host = self._host
        try:
            target = resolve(link.workflow, parent.workspace_path, self.workflows)
            workflow = target.load()
            document = workflow.model_dump(mode="json", exclude_unset=True)
            budget = merge_budgets(link.budget, workflow.budget)
            if budget:
                document["budget"] = budget
            created, wf = new_run(
                document,
                link.inputs,
                run_id=link.run_id,
                workspace=parent.workspace_path,
                services=host.services,
                clock=host._clock,
                workflows=self.workflows,
                memory=host.secret_inputs,
            )
        except PodiumError as exc:
            return [_failed(link, f"cannot start child run {link.run_id}: {exc}")]
        created = created.model_copy(
            update={
                "parent": {"run_id": parent.run_id, "step_id": link.step_id},
                "depth": parent.depth + 1,
                "queue": parent.queue,  # a worker of the parent's queue may take it over
            }
        )
        try:
            lease = await host.store.create_run(
                created,
                workflow_name=wf.name,
                lease_owner=host._owner,
                ttl_seconds=host._policy.ttl_seconds,
            )
        except RunExistsError:  # created before a crash: drive it if nobody does
            if not host.is_driving(link.run_id):
                with contextlib.suppress(LeaseHeldError):
                    await host.resume(link.run_id)
            return []
        if lease is not None:
            host._spawn(new_state(created, wf), lease, resumed=False)
        return []

    async def _stop_children(self, state: RunState) -> None:
        """Post `cancel` to each live child of a stopping run (and to a child whose step no
        longer waits for it: it lost a race), once per engine."""
        if state.stopping is None and not _orphaned(state):
            return
        links = list(state.live_children) if state.stopping is not None else []
        links += _orphaned(state)
        for link in links:
            if link.run_id in self._told:
                continue
            self._told.add(link.run_id)
            child = await self._child_state(link.run_id)
            if child is None or child.outcome is not None or child.stopping == "cancel":
                continue  # not created (nothing to stop) or already ending: its end will come
            with contextlib.suppress(PodiumError):
                await self._host._signal(link.run_id, "cancel", {"reason": "its parent stopped"})

    async def _tell_parent(self, child: RunState) -> None:
        """Post the child's end to its parent, then wake the parent here if nobody drives it."""
        ended = ended_of(child)
        if ended is None or child.parent is None:
            return
        payload = {
            "step_id": ended.step_id,
            "child_run_id": ended.child_run_id,
            "outcome": ended.outcome,
            "output": ended.output,
            "error": ended.error,
            "budget": ended.budget,
            "tokens": ended.tokens,
            "cost_usd": ended.cost_usd,
            "steps": ended.steps,
            "loop_iterations": ended.loop_iterations,
        }
        parent = child.parent["run_id"]
        above = await self._child_state(parent)  # a parent pruned, or whose step moved on
        if above is None or waiting_link(above, ended.step_id, ended.child_run_id) is None:
            return  # (it lost a race, or already read this end from the store): not told
        with contextlib.suppress(RunNotFoundError, LeaseHeldError):
            await self._host._signal(parent, "child", payload)


def _link(state: RunState, event: ev.ChildStarted) -> ChildLink:
    for link in state.children.get(event.step_id, ()):
        if link.run_id == event.child_run_id:
            return link
    raise AssertionError(f"child.started for {event.child_run_id} was not folded")


def _orphaned(state: RunState) -> list[ChildLink]:
    """Live links of steps that finished without their child (they lost an any/quorum race)."""
    return [
        link
        for step_id, links in state.children.items()
        if state.steps[step_id].terminal
        for link in links
        if link.live
    ]


def _failed(link: ChildLink, error: str) -> ChildEnded:
    return ChildEnded(step_id=link.step_id, child_run_id=link.run_id, outcome="failed", error=error)


__all__ = ["ChildRuns", "Host"]
