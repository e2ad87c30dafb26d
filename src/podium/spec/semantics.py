"""Checks across steps: ids, needs, cycles, joins and what each template may reference."""

from __future__ import annotations

import difflib
import functools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice

from podium.errors import Problem
from podium.spec.expr import ExpressionError, references
from podium.spec.loop import loop_reference_problem, until_problems
from podium.spec.model import LoopStep, Quorum, StepBase
from podium.spec.template import parse_condition, parse_template

STEP_FIELDS = ("attempts", "error", "output", "status")
ROOTS = ("inputs", "run", "steps")
MAX_CYCLES_REPORTED = 20
MAX_ID_HINTS = 25

Ref = tuple[str, ...]


@dataclass(frozen=True)
class _Outer:
    """A loop body's surroundings: the ids outside it, and the check of a reference to one
    (what the loop step itself may read)."""

    ids: Mapping[str, list[int]]
    check: Callable[[Ref], str | None]


@dataclass
class _Graph:
    """The steps that passed schema validation, every id in the document and the usable edges."""

    steps: list[tuple[int, StepBase]]
    ids: Mapping[str, list[int]]
    inputs: set[str]
    outer: _Outer | None = None
    edges: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    _ancestors: dict[str, int | None] | None = field(default=None, init=False)
    _bits: dict[str, int] = field(default_factory=dict, init=False)
    _hints_left: int = field(default=MAX_ID_HINTS, init=False)

    @functools.cached_property
    def loop_ids(self) -> frozenset[str]:
        """The loop steps among these steps (they have `iterations`)."""
        return frozenset(s.id for _, s in self.steps if isinstance(s, LoopStep))

    def id_hint(self, name: str) -> str:
        """`did_you_mean` among the step ids, for the first MAX_ID_HINTS unknown ids only: each
        costs a pass over every id, and no listing shows more problems than that."""
        if self._hints_left <= 0:
            return ""
        self._hints_left -= 1
        return did_you_mean(name, self.ids)

    def is_upstream(self, target: str, step_id: str) -> bool:
        """Whether `step_id` needs `target`, directly or not; True when that cannot be known."""
        if any(need == target for need, _ in self.edges.get(step_id, ())):
            return True
        if self._ancestors is None:
            self._bits = {node: 1 << position for position, node in enumerate(self.ids)}
            self._ancestors = _ancestors(self, self._bits)
        above = self._ancestors.get(step_id)
        return above is None or bool(above & self._bits[target])


def graph_problems(
    steps: list[tuple[int, StepBase]],
    ids: Mapping[str, list[int]],
    inputs: set[str],
    outer: _Outer | None = None,
) -> list[Problem]:
    """Problems between steps. `ids` maps each id to the indexes using it, valid steps or not;
    `outer` is set for a loop's body (its paths are relative to the loop step's)."""
    graph = _Graph(steps, ids, inputs, outer)
    problems = list(_duplicate_ids(ids))
    problems += [_dotted(index, step.id) for index, step in steps if "." in step.id]
    for index, step in steps:
        problems += _needs_problems(index, step, graph)
        problems += _join_problems(index, step)
    problems += _cycles(graph)
    for index, step in steps:
        problems += _template_problems(index, step, graph)
        if isinstance(step, LoopStep):
            problems += _body_problems(index, step, graph)
    return problems


def _body_problems(index: int, step: LoopStep, graph: _Graph) -> list[Problem]:
    """A loop body is a graph of its own: its ids, needs, cycles and templates, where an id
    outside the body reads as the loop step would (upstream of it); then its `until`."""
    ids: dict[str, list[int]] = {}
    for position, body in enumerate(step.steps):
        ids.setdefault(body.id, []).append(position)
    outer = _Outer(graph.ids, lambda ref: _step_reference_problem(ref, step, graph))
    where = f"steps[{index}]"
    found = graph_problems(list(enumerate(step.steps)), ids, graph.inputs, outer)
    problems = [Problem(f"{where}.{p.path}", p.message) for p in found]
    loops = {s.id for s in step.steps if isinstance(s, LoopStep)}
    return problems + until_problems(where, step, outer.check, loops)


def _dotted(index: int, step_id: str) -> Problem:
    fixed = step_id.replace(".", "_")
    message = (
        f'"." in step ids is reserved for the children of plan steps and loops; write {fixed!r}'
    )
    return Problem(f"steps[{index}].id", message)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`; did you mean "needs"?` when a choice is close to `name`, else an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


def _duplicate_ids(ids: Mapping[str, list[int]]) -> Iterator[Problem]:
    for step_id, indexes in ids.items():
        for index in indexes[1:]:
            message = (
                f'duplicate step id "{step_id}", also used by steps[{indexes[0]}]; '
                "step ids must be unique"
            )
            yield Problem(f"steps[{index}].id", message)


def _needs_problems(index: int, step: StepBase, graph: _Graph) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    edges = graph.edges.setdefault(step.id, [])
    for position, need in enumerate(step.needs):
        where = f"steps[{index}].needs[{position}]"
        if need == step.id:
            yield Problem(where, f'step "{step.id}" needs itself; remove it')
        elif need not in graph.ids and graph.outer is not None and need in graph.outer.ids:
            message = (
                f'"{need}" is outside this loop\'s body: body steps need only body steps; '
                "add it to the loop step's needs instead"
            )
            yield Problem(where, message)
        elif need not in graph.ids:
            yield Problem(where, f'unknown step "{need}"{graph.id_hint(need)}')
        elif need in seen:
            yield Problem(where, f'"{need}" is listed twice (also needs[{seen[need]}]); remove one')
        else:
            seen[need] = position
            edges.append((need, position))


def _join_problems(index: int, step: StepBase) -> Iterator[Problem]:
    count = len(set(step.needs))
    if isinstance(step.join, Quorum) and count and step.join.quorum > count:
        message = (
            f"quorum {step.join.quorum} is more than the {count} step{'s' if count > 1 else ''} "
            "in needs; lower the quorum or add needs"
        )
        yield Problem(f"steps[{index}].join.quorum", message)
    elif step.join != "all" and not count:
        join = "any" if step.join == "any" else "quorum"
        yield Problem(f"steps[{index}].join", f'join "{join}" waits on needs, but needs is empty')


# --- cycles -------------------------------------------------------------------------------------


def _cycles(graph: _Graph) -> list[Problem]:
    """Every cycle closed by a back edge of an iterative depth-first search (no recursion)."""
    done: set[str] = set()
    found = (
        problem
        for _, step in graph.steps
        if step.id not in done
        for problem in _search(step.id, graph, done)
    )
    return list(islice(found, MAX_CYCLES_REPORTED))


def _search(start: str, graph: _Graph, done: set[str]) -> Iterator[Problem]:
    path = [start]
    on_path = {start: 0}
    pending = [iter(graph.edges.get(start, ()))]
    while pending:
        edge = next(pending[-1], None)
        if edge is None:
            finished = path.pop()
            del on_path[finished]
            done.add(finished)
            pending.pop()
            continue
        need, position = edge
        if need in on_path:
            yield _cycle_problem(path[on_path[need] :], need, position, graph)
        elif need not in done:
            on_path[need] = len(path)
            path.append(need)
            pending.append(iter(graph.edges.get(need, ())))


def _cycle_problem(loop: list[str], need: str, position: int, graph: _Graph) -> Problem:
    shown = loop if len(loop) <= 12 else [*loop[:5], f"... {len(loop) - 10} more ...", *loop[-5:]]
    names = " -> ".join([*shown, need])
    index = graph.ids[loop[-1]][0]
    message = f"cycle: {names} (each step needs the next); remove one of these needs"
    return Problem(f"steps[{index}].needs[{position}]", message)


# --- templates ----------------------------------------------------------------------------------


def _template_problems(index: int, step: StepBase, graph: _Graph) -> list[Problem]:
    problems: list[Problem] = []
    refs: dict[str, set[Ref]] = {}
    for name in type(step).templated:
        for where, text in _strings(getattr(step, name), f"steps[{index}].{name}"):
            try:
                refs.setdefault(where, set()).update(parse_template(text).references())
            except ExpressionError as exc:
                problems.append(Problem(where, str(exc)))
    for name in ("when", "approval"):
        condition = getattr(step, name)
        if condition is None or (name == "approval" and condition == "required"):
            continue
        try:
            refs[f"steps[{index}].{name}"] = references(parse_condition(condition))
        except ExpressionError as exc:
            problems.append(Problem(f"steps[{index}].{name}", str(exc)))
    return problems + _reference_problems(step, refs, graph)


def _strings(value: object, path: str) -> Iterator[tuple[str, str]]:
    """Every string inside a nested value that contains a template, with its path."""
    stack: list[tuple[object, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str) and "${{" in item:
            yield where, item
        elif isinstance(item, Mapping):
            stack += [(child, f"{where}.{key}") for key, child in reversed(list(item.items()))]
        elif isinstance(item, list | tuple):
            stack += [(child, f"{where}[{n}]") for n, child in reversed(list(enumerate(item)))]


def _reference_problems(step: StepBase, refs: dict[str, set[Ref]], graph: _Graph) -> list[Problem]:
    problems = []
    for where, found in refs.items():
        for ref in sorted(found):
            if (message := _reference_problem(ref, step, graph)) is not None:
                problems.append(Problem(where, message))
    return problems


def _reference_problem(ref: Ref, step: StepBase, graph: _Graph) -> str | None:
    root = ref[0]
    if root == "inputs" and len(ref) > 1 and ref[1] not in graph.inputs:
        hint = did_you_mean(ref[1], graph.inputs) or "; declare it under inputs"
        return f'template references input "{ref[1]}", which is not declared in inputs{hint}'
    if root == "steps":
        return _step_reference_problem(ref, step, graph)
    if root == "loop":
        return loop_reference_problem(ref, None if graph.outer is None else graph.ids)
    if root not in ROOTS:
        roots = "inputs, steps, loop or run" if graph.outer is not None else "inputs, steps or run"
        return f'template uses unknown name "{root}"; expressions start with {roots}'
    return None


def _step_reference_problem(ref: Ref, step: StepBase, graph: _Graph) -> str | None:
    if len(ref) == 1:
        return "template reads steps without naming one; write steps.<id>.output"
    target = ref[1]
    if target not in graph.ids and graph.outer is not None:
        return graph.outer.check(ref)  # outside this loop's body: upstream of the loop?
    if target not in graph.ids:
        return f'template references unknown step "{target}"{graph.id_hint(target)}'
    if target == step.id:
        return f'template references step "{target}" itself; a step cannot read its own result'
    fields = (*STEP_FIELDS, "iterations") if _is_loop(graph, target) else STEP_FIELDS
    if len(ref) > 2 and ref[2] not in fields:
        hint = did_you_mean(ref[2], fields) or f"; a step has {', '.join(fields)}"
        return f"template references steps.{target}.{ref[2]}, which does not exist{hint}"
    if not graph.is_upstream(target, step.id):
        return (
            f'template references step "{target}", which is not upstream of "{step.id}"; '
            "add it to needs"
        )
    return None


def _is_loop(graph: _Graph, step_id: str) -> bool:
    return step_id in graph.loop_ids


def _ancestors(graph: _Graph, bits: dict[str, int]) -> dict[str, int | None]:
    """Each step's transitive needs as a bitset, in topological order (no recursion).

    None, or no entry, means unknown: the step failed validation, depends on one that did, or is
    in or after a cycle (already reported).
    """
    waiting = {node: len(needs) for node, needs in graph.edges.items()}
    dependents: dict[str, list[str]] = {}
    for node, needs in graph.edges.items():
        for need, _ in needs:
            dependents.setdefault(need, []).append(node)
    found: dict[str, int | None] = {node: None for node in graph.ids if node not in graph.edges}
    ready = deque([*found, *(node for node, count in waiting.items() if count == 0)])
    while ready:
        node = ready.popleft()
        if node in graph.edges:
            found[node] = _union(graph.edges[node], found, bits)
        for dependent in dependents.get(node, ()):
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                ready.append(dependent)
    return found


def _union(
    needs: list[tuple[str, int]], found: dict[str, int | None], bits: dict[str, int]
) -> int | None:
    union = 0
    for need, _ in needs:
        if (above := found[need]) is None:
            return None
        union |= above | bits[need]
    return union
