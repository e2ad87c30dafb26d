"""Untrusted text (SPEC F16): which step outputs came from outside the workflow's author, and
whether a step is about to splice one into what it executes.

A step's output is untrusted when the step is an `http`, `agent`, `plan` or `workflow` step (the
network, a model, a child run), when any of its templated fields reads an untrusted output, or,
for a loop, when any of its iterations' steps is untrusted. Run inputs, human answers and the
outputs of other steps that read only trusted text are trusted. Derived from the state alone
(no event records it), so every process and every replay decides the same. Pure.

`splice` finds untrusted text about to reach a shell step's `run` or `cwd`, the scheme, host or
port of an http step's `url`, or a file step's `path`: the gate (core/approvals.py) holds such a
step for a person. `env:`, `stdin:`, an url's path and query, `query:`, `headers:`, `body:` and a
file's `content` are data channels and never hold a step.
"""

from __future__ import annotations

from collections.abc import Iterator

from podium.core.state import RunState, StepState, body_ids, loop_scope
from podium.spec.model import FileStep, HttpStep, ShellStep, StepBase
from podium.spec.template import TemplateError, parse_template

UNTRUSTED_KINDS = frozenset({"http", "agent", "plan", "workflow"})
# what `steps.<id>.<field>` reads that is not the step's output (or text derived from it)
_TRUSTED_FIELDS = frozenset({"status", "attempts"})
# the fields whose untrusted text a step may not execute or be steered by, per kind
_GUARDED: dict[type[StepBase], tuple[str, ...]] = {
    ShellStep: ("run", "cwd"),
    HttpStep: ("url",),
    FileStep: ("path",),
}
_HINTS = {
    "run": "pass it through env: or stdin:",
    "cwd": "pass it through env: or stdin:",
    "url": "keep it in the url's path or in query:",
    "path": "approve the path",
}
Ref = tuple[str, ...]


def untrusted(state: RunState, step_id: str) -> bool:
    """Whether the output of `step_id` is untrusted text."""
    return _Taint(state).of(step_id)


def splice(state: RunState, step: StepState) -> tuple[str, str] | None:
    """(the reference as written, the field) of the first untrusted text `step` would splice
    into a guarded field, or None."""
    taint = _Taint(state)
    for field in _guarded(step.spec):
        for ref in _field_refs(getattr(step.spec, field), authority=field == "url"):
            if taint.reads_untrusted(step.id, ref):
                return _written(ref), field
    return None


def reason(ref: str, field: str) -> str:
    """What a person is told: which text, where, and how to avoid the question."""
    return f"untrusted: {ref} in {field} ({_HINTS[field]}, or set allow_untrusted: true)"


def _guarded(spec: StepBase) -> tuple[str, ...]:
    return next((f for kind, f in _GUARDED.items() if isinstance(spec, kind)), ())


class _Taint:
    """Taint of each step of one state, kept on the state (`RunState.derived`) until a step is
    added, removed or edited: a chain of n gated steps costs O(n), not O(n^2)."""

    def __init__(self, state: RunState) -> None:
        self._state = state
        self._derived = state.derived
        self._known = state.derived.taint

    def _children_of(self, step_id: str) -> list[str]:
        derived = self._derived
        if derived.children is None:
            derived.children = {}
            for child in self._state.steps.values():
                if child.parent is not None:
                    derived.children.setdefault(child.parent, []).append(child.id)
        return derived.children.get(step_id, [])

    def of(self, step_id: str) -> bool:
        """Worked out with an explicit stack (depth-first, sources before the step), so a chain
        of thousands of templated steps does not recurse once per step. A step met again while
        it is being worked out (a reference cycle) counts as trusted, as it cannot add taint."""
        if step_id in self._known:
            return self._known[step_id]
        open_: set[str] = set()  # being worked out: met again, it counts as trusted
        stack: list[tuple[str, Iterator[str]]] = []
        pending: dict[str, str] = {}  # step -> the source it pushed and waits for

        def enter(sid: str) -> None:
            sources = self._sources(sid)
            self._known[sid] = sources is None
            if sources is not None:
                open_.add(sid)
                stack.append((sid, iter(sources)))

        def finish(sid: str, found: bool) -> None:
            self._known[sid] = found
            open_.discard(sid)
            stack.pop()

        enter(step_id)
        while stack:
            sid, sources = stack[-1]
            waited = pending.pop(sid, None)
            if waited is not None and self._known[waited]:
                finish(sid, True)
                continue
            for source in sources:
                if source not in self._known:
                    pending[sid] = source
                    enter(source)
                    break
                if self._known[source] and source not in open_:
                    finish(sid, True)
                    break
            else:
                finish(sid, False)
        return self._known[step_id]

    def _sources(self, step_id: str) -> list[str] | None:
        """The steps whose untrusted output would make `step_id`'s untrusted; None when it is
        untrusted by its kind."""
        step = self._state.steps.get(step_id)
        if step is None:
            return []
        if getattr(step.spec, "kind", None) in UNTRUSTED_KINDS:
            return None
        found = [sid for ref in _spec_refs(step.spec) for sid in self._read(step_id, ref)]
        return found + self._children_of(step_id)

    def reads_untrusted(self, reader: str, ref: Ref) -> bool:
        """Whether `ref`, read by step `reader`'s templates, is untrusted text."""
        return any(self.of(sid) for sid in self._read(reader, ref))

    def _read(self, reader: str, ref: Ref) -> list[str]:
        """The steps whose output `ref`, read by step `reader`'s templates, stands for."""
        aliases, previous = _scope(self._state, reader)
        if ref[0] == "steps":
            if len(ref) == 1:  # `steps[expr]`: could be any step
                return list(self._state.steps)
            if len(ref) > 2 and ref[2] in _TRUSTED_FIELDS:
                return []
            return [aliases.get(ref[1], ref[1])]
        if ref[0] == "loop" and (len(ref) == 1 or ref[1] == "previous"):
            if len(ref) <= 2:
                return list(previous.values())
            if len(ref) > 3 and ref[3] in _TRUSTED_FIELDS:
                return []
            return [previous[ref[2]]] if ref[2] in previous else []
        return []  # inputs, run, loop.iteration: the run's own


def _scope(state: RunState, step_id: str) -> tuple[dict[str, str], dict[str, str]]:
    """For a loop's child: the body ids it reads as `steps.<id>` mapped to its iteration's
    children (innermost loop first), and `loop.previous.<id>` mapped to the last iteration's."""
    aliases: dict[str, str] = {}
    previous: dict[str, str] = {}
    step = state.steps.get(step_id)
    scope = loop_scope(state, step.parent, step_id) if step is not None else None
    if scope is not None and scope[1] > 1:
        loop_id, n = scope
        previous = {b: f"{loop_id}.{n - 1}.{b}" for b in body_ids(state.steps[loop_id].spec)}
    while scope is not None:
        loop_id, n = scope
        for body_id in body_ids(state.steps[loop_id].spec):
            aliases.setdefault(body_id, f"{loop_id}.{n}.{body_id}")
        scope = loop_scope(state, state.steps[loop_id].parent, loop_id)
    return aliases, previous


def _spec_refs(spec: StepBase) -> Iterator[Ref]:
    for field in spec.templated:
        yield from _field_refs(getattr(spec, field), authority=False)


def _field_refs(value: object, *, authority: bool) -> Iterator[Ref]:
    """The references of every template in `value`; with `authority`, only those in a URL's
    scheme, host or port (before the first `/`, `?` or `#` after `//`)."""
    for text in _strings(value):
        if "${{" not in text:
            continue
        try:
            template = parse_template(text)
        except TemplateError:
            continue  # the attempt fails on it, before anything runs
        for before, refs in template.slots():
            if not authority or _in_authority(before):
                yield from refs


def _in_authority(before: str) -> bool:
    """Whether text written after `before` lands in a URL's scheme, host or port. NUL stands for
    an earlier `${{ }}` part: a `/` after it ends its authority too."""
    start = before.find("//")
    if start >= 0:
        return not any(c in before[start + 2 :] for c in "/?#")
    if "\0" in before:
        return not any(c in before[before.index("\0") :] for c in "/?#")
    return True


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _written(ref: Ref) -> str:
    return ".".join(ref) if len(ref) > 1 else f"{ref[0]}[…]"
