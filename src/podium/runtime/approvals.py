"""People in the loop from the engine: what waits for a person across runs, and their decisions
(approve as asked, approve an edited input, reject). Every decision is checked against the
committed state and the signals already posted before anything is posted: a step that is not
waiting, a second decision on it, an edit that does not validate are refused, nothing posted."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from podium.clock import Clock
from podium.core.approvals import approve_event, awaiting, edited_spec, pending, reject_event
from podium.core.state import RunState, require_step
from podium.errors import InvalidTransitionError, RunNotFoundError, UsageError
from podium.runtime.services import AgentServices
from podium.runtime.submission import check_edited_plan
from podium.spec.answers import parse_answer
from podium.spec.model import HumanStep
from podium.spec.subworkflows import MAX_NESTING
from podium.store.base import EventStore, SignalKind


class Engine(Protocol):
    """What deciding needs of the engine (runtime/engine.py): its store, agents and clock, the
    committed state, and posting a checked signal."""

    store: EventStore
    services: AgentServices
    _clock: Clock

    async def state(self, run_id: str) -> RunState: ...

    async def _signal(self, run_id: str, kind: SignalKind, payload: dict[str, Any]) -> bool: ...

    def _adopt_run_defaults(self, state: RunState) -> None: ...


LISTED_RUNS = 1000  # `approvals` without a run reads at most this many waiting runs, newest first


@dataclass(frozen=True, slots=True)
class Waiting:
    """One thing waiting for a person: a step's input, or a plan step's plan."""

    run_id: str
    step_id: str
    subject: str  # step | plan | answer | tool
    since: datetime
    input: dict[str, Any]
    version: int | None = None
    reason: str | None = None  # why it is asked: "policy: planned_shell", "approval: required"

    def document(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "step_id": self.step_id,
            "subject": self.subject,
            "since": self.since.isoformat(),
            "input": self.input,
            "version": self.version,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class WaitingList:
    """What waits for a person across runs, and whether more waiting runs exist than were read
    (`more`: only the newest `LISTED_RUNS` are)."""

    found: list[Waiting]
    more: bool


async def waiting_runs(engine: Engine) -> WaitingList:
    """What waits for a person in every live run: only runs whose status is `waiting` or
    `running` are read (a step can wait for a person while another branch runs), at most
    `LISTED_RUNS` of them, newest first; never the finished runs of the store."""
    records = await engine.store.list_runs(statuses=["waiting", "running"], limit=LISTED_RUNS + 1)
    found = await waiting_in(engine, [r.run_id for r in records[:LISTED_RUNS]])
    return WaitingList(sorted(found, key=lambda w: w.since), more=len(records) > LISTED_RUNS)


async def waiting(engine: Engine, run_id: str | None = None) -> list[Waiting]:
    """What waits for a person in `run_id`, or in every waiting run (oldest request first;
    see `waiting_runs`)."""
    if run_id is None:
        return (await waiting_runs(engine)).found
    found = await waiting_in(engine, [run_id], strict=True)
    return found + await _in_descendants(engine, run_id)


async def _in_descendants(engine: Engine, run_id: str) -> list[Waiting]:
    """What waits for a person in the live child runs of `run_id`'s workflow steps, and in
    theirs (a run tree is at most `MAX_NESTING` deep)."""
    found: list[Waiting] = []
    parents = [run_id]
    for _ in range(MAX_NESTING):
        children: list[str] = []
        for rid in parents:
            try:
                state = await engine.state(rid)
            except RunNotFoundError:
                continue
            children += [link.run_id for link in state.live_children]
        if not children:
            break
        found += await waiting_in(engine, children)
        parents = children
    return found


async def waiting_in(
    engine: Engine, run_ids: Sequence[str], *, strict: bool = False
) -> list[Waiting]:
    """What waits for a person in each of `run_ids` (one pruned since it was listed is left
    out, unless `strict`)."""
    found: list[Waiting] = []
    for rid in run_ids:
        try:
            state = await engine.state(rid)
        except RunNotFoundError:
            if strict:
                raise
            continue  # pruned since it was listed
        if state.outcome is not None:
            continue
        found += [
            Waiting(rid, a.step_id, a.subject, a.since, a.input, a.version, a.reason)
            for a in pending(state)
        ]
    return found


async def approve(
    engine: Engine,
    run_id: str,
    step_id: str | None = None,
    *,
    plan: Mapping[str, Any] | None = None,
    edit: Mapping[str, Any] | None = None,
    set: Sequence[str] | Mapping[str, Any] | None = None,
) -> bool:
    """Approve what `step_id` (or the run's only pending approval) waits on: as asked, as an
    edited `plan` (a plan step), or with `edit` fields and `set` values (`key=value`, a dotted
    key reaching into a mapping field) replacing the step's fields, or for an agent's held tool
    call (subject `tool`) its arguments (checked against the tool's input schema). Returns True
    if this engine now drives the run."""
    state = await engine.state(run_id)
    found = awaiting(state, step_id)
    await _not_decided(engine, run_id, found.step_id)
    if found.subject == "plan":
        plan = plan if plan is not None else edit  # a plan step's edit is its edited plan
        if set:
            raise UsageError(
                f"step {found.step_id} awaits a plan; give the edited plan as a file (--edit)"
            )
        engine._adopt_run_defaults(state)
        edited = dict(plan) if plan is not None else None
        if edited is not None:
            check_edited_plan(state, found.step_id, edited, engine.services)
        payload: dict[str, Any] = {"step_id": found.step_id, "plan": edited}
    else:
        if plan is not None:
            raise UsageError(f"step {found.step_id} is not a plan step; edit its fields instead")
        held = found.subject == "tool"  # an agent's tool call: the edits are its arguments
        fields = (found.input.get("arguments") or {}) if held else None
        spec = state.steps[found.step_id].spec
        edits = _edits(fields if fields is not None else spec.model_dump(), edit, set)
        if edits and not held:
            edited_spec(spec, edits)
        approve_event(state, found.step_id, engine._clock.now(), edits=edits or None)
        payload = {"step_id": found.step_id, "edits": edits or None}
    return await engine._signal(run_id, "approve", payload)


async def answer(engine: Engine, run_id: str, step_id: str, value: Any) -> bool:
    """Answer a `human` step with `value` (checked against what it asks: text, a choice, a JSON
    Schema): it succeeds with the value as its output."""
    state = await engine.state(run_id)
    found = approve_event(state, step_id, engine._clock.now(), answer=(value,))
    await _not_decided(engine, run_id, found.step_id)
    return await engine._signal(run_id, "approve", {"step_id": found.step_id, "answer": value})


def parsed_answer(state: RunState, step_id: str, text: str) -> Any:
    """What an answer typed on a command line stands for (see spec/answers.parse_answer)."""
    spec = require_step(state, step_id).spec
    return parse_answer(spec.input, text) if isinstance(spec, HumanStep) else text


async def reject(engine: Engine, run_id: str, step_id: str | None = None, *, reason: str) -> bool:
    """Refuse what `step_id` (or the only pending approval) waits on: the step fails with the
    reason, and what needs it is skipped."""
    state = await engine.state(run_id)
    found = reject_event(state, step_id, engine._clock.now(), reason)
    await _not_decided(engine, run_id, found.step_id)
    return await engine._signal(run_id, "reject", {"step_id": found.step_id, "reason": reason})


async def _not_decided(engine: Engine, run_id: str, step_id: str) -> None:
    """A decision already posted for the step and not yet read by its driver: a second one
    would be refused when read, so it is refused now."""
    for signal in await engine.store.pending_signals(run_id):
        if signal.kind in ("approve", "reject") and signal.payload.get("step_id") == step_id:
            raise InvalidTransitionError(
                f"step {step_id} of run {run_id} was already decided ({signal.kind}d); its "
                "driver has not read that yet; see `podium show " + run_id + "`",
                run_id=run_id,
                step_id=step_id,
            )


def _edits(
    fields: dict[str, Any],
    edit: Mapping[str, Any] | None,
    values: Sequence[str] | Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The fields an approval replaces: `edit` as given, then each `key=value` of `values`
    (a value is read as JSON when it parses, else as text)."""
    edits = dict(edit or {})
    pairs = values.items() if isinstance(values, Mapping) else [_pair(v) for v in values or ()]
    for key, value in pairs:
        head, _, rest = key.partition(".")
        if not rest:
            edits[head] = value
            continue
        base = edits.get(head, fields.get(head))
        if not isinstance(base, dict):
            raise UsageError(f"--set {key}: field {head} is not a mapping; set it whole")
        edits[head] = _nested(dict(base), rest.split("."), value)
    return edits


def _nested(target: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    head, rest = path[0], path[1:]
    if rest:
        inner = target.get(head)
        target[head] = _nested(dict(inner) if isinstance(inner, dict) else {}, rest, value)
    else:
        target[head] = value
    return target


def _pair(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--set {text!r}: write KEY=VALUE, e.g. --set run='echo hi'")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value
