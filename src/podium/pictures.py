"""Pictures of a workflow's graph: a `Picture` (nodes, `needs` edges, plan children grouped under
their plan step) built from a workflow or a run's state, drawn as Mermaid or Graphviz dot text.
Pure: `podium.svg` draws the same picture without Graphviz."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from podium.core import loops
from podium.core.state import RunState, StepState
from podium.spec.model import LoopStep, StepBase, Workflow

# Fill and stroke of each step status (the same in every format).
COLOURS: dict[str, tuple[str, str]] = {
    "pending": ("#f4f4f5", "#a1a1aa"),
    "ready": ("#e0f2fe", "#0284c7"),
    "running": ("#dbeafe", "#2563eb"),
    "waiting": ("#fef9c3", "#ca8a04"),
    "retrying": ("#ffedd5", "#ea580c"),
    "interrupted": ("#fae8ff", "#a21caf"),
    "succeeded": ("#dcfce7", "#16a34a"),
    "failed": ("#fee2e2", "#dc2626"),
    "skipped": ("#f5f5f4", "#78716c"),
    "cancelled": ("#e7e5e4", "#57534e"),
}
PLAIN = ("#ffffff", "#52525b")  # a workflow's steps, which have no status yet


@dataclass(frozen=True, slots=True)
class Node:
    """One step. `group` is the plan step a plan child belongs to, or the iteration
    (`<loop>.<n>`) a loop's child belongs to."""

    id: str
    kind: str
    status: str | None = None
    seconds: float | None = None
    group: str | None = None

    @property
    def lines(self) -> tuple[str, str]:
        """The label: the id, then the kind (and the status and duration of a run's step)."""
        detail = [self.kind]
        if self.status is not None:
            detail.append(self.status)
        if self.seconds is not None:
            detail.append(duration_text(self.seconds))
        return self.id, " · ".join(detail)

    @property
    def colours(self) -> tuple[str, str]:
        return COLOURS.get(self.status or "", PLAIN)


@dataclass(frozen=True, slots=True)
class Edge:
    """`source` must finish before `target`; a spawn edge joins a plan step to its children."""

    source: str
    target: str
    spawn: bool = False


@dataclass(frozen=True, slots=True)
class Picture:
    title: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def groups(self) -> dict[str, list[Node]]:
        """The plan children of each plan step that has any, in the order they were added."""
        found: dict[str, list[Node]] = {}
        for node in self.nodes:
            if node.group is not None:
                found.setdefault(node.group, []).append(node)
        return found


def duration_text(seconds: float) -> str:
    """`<1ms`, `15ms`, `4.2s`, `12s`, `4m05s`, `2h07m`: sub-second runs are common, so below a
    second the milliseconds show (the terminal views and the pictures use this one form)."""
    seconds = max(seconds, 0.0)
    if seconds < 0.001:
        return "<1ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


# ------------------------------------------------------------------------------ building one


def workflow_picture(workflow: Workflow) -> Picture:
    """The workflow's steps and needs; a loop's body is drawn once, grouped under the loop
    (`<loop>.<body id>`), as every iteration will run it."""
    nodes: list[Node] = []
    edges: list[Edge] = []
    _add_steps(workflow.steps, "", None, nodes, edges)
    return Picture(workflow.name, tuple(nodes), tuple(edges))


def _add_steps(
    steps: Iterable[StepBase], prefix: str, group: str | None, nodes: list[Node], edges: list[Edge]
) -> None:
    for step in steps:
        step_id = prefix + step.id
        nodes.append(Node(id=step_id, kind=_kind(step), group=group))
        edges += [Edge(prefix + need, step_id) for need in step.needs]
        if group is not None and not step.needs:
            edges.append(Edge(group, step_id, spawn=True))
        if isinstance(step, LoopStep):
            _add_steps(step.steps, f"{step_id}.", step_id, nodes, edges)


def run_picture(state: RunState) -> Picture:
    """The run's steps, plan children included, with their statuses and durations."""
    steps = list(state.steps.values())
    nodes = tuple(_run_node(step, loops.group(state, step)) for step in steps)
    edges = list(_needs(step.spec for step in steps))
    for step in steps:
        if step.parent is not None and not step.spec.needs:
            edges.append(Edge(step.parent, step.id, spawn=True))
    return Picture(f"{state.workflow.name} · run {state.run_id}", nodes, tuple(edges))


def _run_node(step: StepState, group: str | None) -> Node:
    return Node(
        id=step.id,
        kind=_kind(step.spec),
        status=str(step.status),
        seconds=_seconds(step.started_at, step.finished_at),
        group=group,
    )


def _kind(step: StepBase) -> str:
    return str(getattr(step, "kind", "step"))


def _seconds(started: datetime | None, finished: datetime | None) -> float | None:
    if started is None or finished is None:
        return None
    return max((finished - started).total_seconds(), 0.0)


def _needs(steps: Iterable[StepBase]) -> Iterator[Edge]:
    for step in steps:
        for need in step.needs:
            yield Edge(need, step.id)


# ------------------------------------------------------------------------------------ mermaid


def mermaid(picture: Picture) -> str:
    """A `flowchart TD`: nodes `n0…` with quoted labels, a classDef per status used."""
    ids = {node.id: f"n{index}" for index, node in enumerate(picture.nodes)}
    lines = ["flowchart TD", f"  %% {_mermaid_comment(picture.title)}"]
    groups = picture.groups()
    lines += [f"  {ids[n.id]}{_mermaid_label(n)}" for n in picture.nodes if n.group not in groups]
    for index, (plan, members) in enumerate(groups.items()):
        lines.append(f'  subgraph g{index}["{_mermaid_text(plan + ".*")}"]')
        lines += [f"    {ids[n.id]}{_mermaid_label(n)}" for n in members]
        lines.append("  end")
    for edge in picture.edges:
        arrow = "-.->" if edge.spawn else "-->"
        lines.append(f"  {ids[edge.source]} {arrow} {ids[edge.target]}")
    lines += _mermaid_classes(picture, ids)
    return "\n".join(lines) + "\n"


def _mermaid_label(node: Node) -> str:
    first, second = node.lines
    text = f"{_mermaid_text(first)}<br/>{_mermaid_text(second)}"
    return f'["{text}"]' if node.kind != "plan" else f'[["{text}"]]'


def _mermaid_text(text: str) -> str:
    """Mermaid's entity codes for what would end or change a quoted label."""
    special = {'"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "#": "#35;", "`": "#96;"}
    flat = " ".join(text.split())
    return "".join(special.get(char, char) for char in flat)


def _mermaid_comment(text: str) -> str:
    return " ".join(text.split()).replace("%%", "% %")


def _mermaid_classes(picture: Picture, ids: dict[str, str]) -> list[str]:
    used: dict[str, list[str]] = {}
    for node in picture.nodes:
        if node.status is not None:
            used.setdefault(node.status, []).append(ids[node.id])
    lines = []
    for status, members in used.items():
        fill, stroke = COLOURS.get(status, PLAIN)
        lines.append(f"  classDef {status} fill:{fill},stroke:{stroke},color:#111")
        lines.append(f"  class {','.join(members)} {status}")
    return lines


# ---------------------------------------------------------------------------------------- dot


def dot(picture: Picture) -> str:
    """Graphviz text: quoted ids, a filled box per step, a `cluster_` subgraph per plan."""
    lines = [
        f"digraph {_dot_quote(picture.title)} {{",
        "  rankdir=TB;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
        '  edge [color="#52525b"];',
    ]
    groups = picture.groups()
    lines += [f"  {_dot_node(n)}" for n in picture.nodes if n.group not in groups]
    for plan, members in groups.items():
        lines.append(f"  subgraph {_dot_quote('cluster_' + plan)} {{")
        lines.append(f'    label={_dot_quote(plan + ".*")}; style=dashed; color="#a1a1aa";')
        lines += [f"    {_dot_node(n)}" for n in members]
        lines.append("  }")
    for edge in picture.edges:
        style = " [style=dashed]" if edge.spawn else ""
        lines.append(f"  {_dot_quote(edge.source)} -> {_dot_quote(edge.target)}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_node(node: Node) -> str:
    fill, stroke = node.colours
    label = "\\n".join(_dot_escape(line) for line in node.lines)
    shape = ", peripheries=2" if node.kind == "plan" else ""
    return f'{_dot_quote(node.id)} [label="{label}", fillcolor="{fill}", color="{stroke}"{shape}];'


def _dot_quote(text: str) -> str:
    return f'"{_dot_escape(text)}"'


def _dot_escape(text: str) -> str:
    """Inside a dot string only `\\` and `"` are special; line breaks become spaces."""
    flat = " ".join(text.split())
    return flat.replace("\\", "\\\\").replace('"', '\\"')


__all__ = [
    "COLOURS",
    "Edge",
    "Node",
    "Picture",
    "dot",
    "duration_text",
    "mermaid",
    "run_picture",
    "workflow_picture",
]
