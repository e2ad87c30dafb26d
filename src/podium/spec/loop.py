"""What a loop step's body and `until` may reference (F2 checks, used by `spec.semantics`):
`loop.iteration`, `loop.previous.<body id>.<field>`, this iteration's body steps, and outer steps
upstream of the loop."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator

from podium.errors import Problem
from podium.spec.expr import ExpressionError, references
from podium.spec.model import LoopStep, StepBase
from podium.spec.template import parse_condition

LOOP_FIELDS = ("iteration", "previous")
STEP_FIELDS = ("attempts", "error", "output", "status")

Ref = tuple[str, ...]


def loop_reference_problem(ref: Ref, body_ids: Collection[str] | None) -> str | None:
    """A problem with a `loop.…` reference; `body_ids` is None outside any loop's body."""
    if body_ids is None:
        return (
            "template uses loop, which is only defined inside a loop step's body; "
            "outside it read steps.<loop id>.output or steps.<loop id>.iterations"
        )
    if len(ref) == 1:
        return "template reads loop without a field; write loop.iteration or loop.previous.<id>"
    if ref[1] not in LOOP_FIELDS:
        return f"template references loop.{ref[1]}, which does not exist; a loop has " + (
            ", ".join(LOOP_FIELDS)
        )
    if ref[1] == "previous" and len(ref) > 2 and ref[2] not in body_ids:
        known = ", ".join(sorted(body_ids))
        return (
            f'template references loop.previous.{ref[2]}, but "{ref[2]}" is not a step of '
            f"this loop's body ({known})"
        )
    if ref[1] == "previous" and len(ref) > 3 and ref[3] not in STEP_FIELDS:
        return (
            f"template references loop.previous.{ref[2]}.{ref[3]}, which does not exist; a "
            f"step has {', '.join(STEP_FIELDS)}"
        )
    return None


def until_problems(
    where: str,
    step: LoopStep,
    outer: Callable[[Ref], str | None],
    loops: Collection[str],
) -> list[Problem]:
    """`until` reads this iteration's body steps (by body id), `loop.*`, and what the loop step
    itself may read (`outer` checks those, `loops` are the body's own loop steps)."""
    if step.until is None:
        return []
    path = f"{where}.until"
    try:
        found = references(parse_condition(step.until))
    except ExpressionError as exc:
        return [Problem(path, str(exc))]
    ids = [s.id for s in step.steps]
    problems = []
    for ref in sorted(found):
        message = _until_reference(ref, ids, outer, loops)
        if message is not None:
            problems.append(Problem(path, message))
    return problems


def _until_reference(
    ref: Ref, ids: list[str], outer: Callable[[Ref], str | None], loops: Collection[str]
) -> str | None:
    if ref[0] == "loop":
        return loop_reference_problem(ref, ids)
    if ref[0] != "steps" or len(ref) < 2 or ref[1] not in ids:
        message = outer(ref)
        if message is not None and ref[0] == "steps" and "unknown step" in message:
            return (
                f'until references unknown step "{ref[1]}"; it reads this iteration\'s body '
                f"steps ({', '.join(ids)}) or steps upstream of the loop"
            )
        return message
    fields = (*STEP_FIELDS, "iterations") if ref[1] in loops else STEP_FIELDS
    if len(ref) > 2 and ref[2] not in fields:
        return (
            f"until references steps.{ref[1]}.{ref[2]}, which does not exist; a step has "
            f"{', '.join(fields)}"
        )
    return None


def walk(steps: Iterable[StepBase], prefix: str = "") -> Iterator[tuple[str, StepBase]]:
    """Every step with its document path (`steps[1]`, `steps[1].steps[0]`), loop bodies
    included: for checks that must see the steps a loop will run."""
    for index, step in enumerate(steps):
        where = f"{prefix}steps[{index}]"
        yield where, step
        if isinstance(step, LoopStep):
            yield from walk(step.steps, f"{where}.")
