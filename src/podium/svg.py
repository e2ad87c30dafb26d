"""A `Picture` drawn as plain SVG without Graphviz: a layered layout (longest-path layers, a few
barycentre passes to untangle each layer, plan children kept side by side) of boxes, labels and
arrows. Pure."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from podium.pictures import Node, Picture

CHAR_WIDTH = 7.0  # a 12px sans-serif character, near enough
MAX_LABEL_CHARS = 40
NODE_HEIGHT = 42.0
MIN_NODE_WIDTH = 96.0
GAP_X = 24.0
GAP_Y = 64.0
MARGIN = 24.0
TITLE_HEIGHT = 28.0
ROW_WIDTH = 16  # a layer of more nodes is drawn as several rows
SWEEPS = 4
GROUP_PAD = 10.0
BEND_WIDTH = 8.0  # the room an edge crossing a layer takes in it
BEND_GAP = 6.0


@dataclass(frozen=True, slots=True)
class Box:
    node: Node
    x: float  # the left edge
    y: float  # the top edge
    width: float

    @property
    def centre(self) -> float:
        return self.x + self.width / 2


# ------------------------------------------------------------------------------------- layout


def layers(picture: Picture) -> list[list[str]]:
    """Longest-path layering: a node sits one layer below the lowest of its predecessors."""
    preds: dict[str, list[str]] = defaultdict(list)
    for edge in picture.edges:
        preds[edge.target].append(edge.source)
    depth: dict[str, int] = {}
    for node in picture.nodes:
        _depth(node.id, preds, depth)
    out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for node in picture.nodes:
        out[depth[node.id]].append(node.id)
    return out


def _depth(start: str, preds: dict[str, list[str]], depth: dict[str, int]) -> int:
    """Without recursion (10,000-step chains); a cycle, which validation forbids, is cut."""
    stack, visiting = [start], set()
    while stack:
        node = stack[-1]
        if node in depth:
            stack.pop()
            continue
        visiting.add(node)
        waiting = [p for p in preds[node] if p not in depth and p not in visiting]
        if waiting:
            stack.extend(waiting)
            continue
        depth[node] = 1 + max((depth[p] for p in preds[node] if p in depth), default=-1)
        stack.pop()
    return depth[start]


@dataclass(frozen=True, slots=True)
class Layout:
    """Where everything goes: a box per step, and the points an edge that spans several layers
    passes through (one per layer it crosses, so it bends round the steps between)."""

    boxes: dict[str, Box]
    bends: dict[int, list[tuple[float, float]]]  # by edge index: (x, top y) of each layer crossed


def layout(picture: Picture) -> Layout:
    """Layers (with a placeholder wherever an edge crosses one), ordered, then placed row by row,
    each row centred on the widest."""
    ranks, chains, links = _with_placeholders(picture)
    group = {node.id: node.group or node.id for node in picture.nodes}
    for index, chain in chains.items():
        edge = picture.edges[index]
        shared = group[edge.source] if group[edge.source] == group[edge.target] else None
        group |= {point: shared or point for point in chain}
    nodes = {node.id: node for node in picture.nodes}
    rows = [row for rank in order(ranks, links, group) for row in _rows(rank, nodes)]
    places = _place(
        rows, {n: _width(nodes[n]) if n in nodes else BEND_WIDTH for r in rows for n in r}
    )
    boxes = {n: Box(nodes[n], x, y, w) for n, (x, y, w) in places.items() if n in nodes}
    bends = {
        index: [(places[p][0] + BEND_WIDTH / 2, places[p][1]) for p in chain]
        for index, chain in chains.items()
    }
    return Layout(boxes, bends)


def _with_placeholders(
    picture: Picture,
) -> tuple[list[list[str]], dict[int, list[str]], list[tuple[str, str]]]:
    ranks = layers(picture)
    depth = {node: level for level, rank in enumerate(ranks) for node in rank}
    chains: dict[int, list[str]] = {}
    links: list[tuple[str, str]] = []
    for index, edge in enumerate(picture.edges):
        crossed = range(depth[edge.source] + 1, depth[edge.target])
        chain = [f"\0{index}.{level}" for level in crossed]
        for level, point in zip(crossed, chain, strict=True):
            ranks[level].append(point)
        chains[index] = chain
        path = [edge.source, *chain, edge.target]
        links += list(itertools.pairwise(path))
    return ranks, chains, links


def order(
    ranks: list[list[str]], links: list[tuple[str, str]], group: dict[str, str]
) -> list[list[str]]:
    """Barycentre sweeps down and up; members of one group (a plan's children) stay together."""
    preds: dict[str, list[str]] = defaultdict(list)
    succs: dict[str, list[str]] = defaultdict(list)
    for source, target in links:
        preds[target].append(source)
        succs[source].append(target)
    ranks = [list(rank) for rank in ranks]
    for sweep in range(SWEEPS):
        down = sweep % 2 == 0
        indexes = range(1, len(ranks)) if down else range(len(ranks) - 2, -1, -1)
        for index in indexes:
            fixed = ranks[index - 1] if down else ranks[index + 1]
            ranks[index] = _sorted(ranks[index], fixed, preds if down else succs, group)
    return ranks


def _sorted(
    rank: list[str], fixed: list[str], links: dict[str, list[str]], group: dict[str, str]
) -> list[str]:
    where = {node: position for position, node in enumerate(fixed)}
    here = {node: float(position) for position, node in enumerate(rank)}
    centre = {
        node: _mean([where[n] for n in links[node] if n in where], here[node]) for node in rank
    }
    members: dict[str, list[float]] = defaultdict(list)
    for node in rank:
        members[group[node]].append(centre[node])
    group_centre = {name: _mean(values, 0.0) for name, values in members.items()}
    return sorted(rank, key=lambda n: (group_centre[group[n]], group[n], centre[n], here[n]))


def _mean(values: list[float] | list[int], default: float) -> float:
    return sum(values) / len(values) if values else default


def _rows(rank: list[str], nodes: dict[str, Node]) -> Iterator[list[str]]:
    """A layer cut into rows of at most ROW_WIDTH steps (edges crossing it go along)."""
    row: list[str] = []
    for item in rank:
        if item in nodes and sum(n in nodes for n in row) == ROW_WIDTH:
            yield row
            row = []
        row.append(item)
    yield row


def _place(
    rows: list[list[str]], widths: dict[str, float]
) -> dict[str, tuple[float, float, float]]:
    """(left x, top y, width) of everything, row by row, each row centred on the widest."""
    gaps = [[_gap(a, b, widths) for a, b in itertools.pairwise(row)] for row in rows]
    spans = [sum(widths[n] for n in row) + sum(g) for row, g in zip(rows, gaps, strict=True)]
    widest = max(spans, default=0.0)
    places: dict[str, tuple[float, float, float]] = {}
    for index, (row, span, row_gaps) in enumerate(zip(rows, spans, gaps, strict=True)):
        x = MARGIN + (widest - span) / 2
        y = MARGIN + TITLE_HEIGHT + index * (NODE_HEIGHT + GAP_Y)
        for node, gap in zip(row, [*row_gaps, 0.0], strict=True):
            places[node] = (x, y, widths[node])
            x += widths[node] + gap
    return places


def _gap(left: str, right: str, widths: dict[str, float]) -> float:
    """Steps keep GAP_X apart; edges crossing a layer pack closer."""
    return GAP_X if widths[left] > BEND_WIDTH and widths[right] > BEND_WIDTH else BEND_GAP


def _width(node: Node) -> float:
    longest = max(len(_clip(line)) for line in node.lines)
    return max(MIN_NODE_WIDTH, longest * CHAR_WIDTH + 20)


def _clip(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_LABEL_CHARS else flat[: MAX_LABEL_CHARS - 1] + "…"


# ---------------------------------------------------------------------------------------- svg


def svg(picture: Picture) -> str:
    """A standalone SVG document of the picture."""
    placed = layout(picture)
    at = placed.boxes
    boxes = list(at.values())
    width = max((b.x + b.width for b in boxes), default=0.0) + MARGIN
    height = max((b.y + NODE_HEIGHT for b in boxes), default=TITLE_HEIGHT) + MARGIN
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="12">',
        f"<title>{escape(picture.title)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'fill="#52525b"/></marker></defs>',
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        f'<text x="{MARGIN}" y="{MARGIN + 12}" font-size="14" font-weight="bold">'
        f"{escape(_clip(picture.title))}</text>",
    ]
    parts += _groups(picture, at)
    parts += [
        _edge(at[e.source], at[e.target], placed.bends[index], e.spawn)
        for index, e in enumerate(picture.edges)
    ]
    parts += [_box(box) for box in boxes]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _groups(picture: Picture, at: dict[str, Box]) -> list[str]:
    parts = []
    for plan, members in picture.groups().items():
        boxes = [at[node.id] for node in members]
        left = min(b.x for b in boxes) - GROUP_PAD
        top = min(b.y for b in boxes) - GROUP_PAD - 14
        right = max(b.x + b.width for b in boxes) + GROUP_PAD
        bottom = max(b.y for b in boxes) + NODE_HEIGHT + GROUP_PAD
        parts.append(
            f'<g class="group"><rect x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" '
            f'height="{bottom - top:.1f}" rx="8" fill="#fafafa" stroke="#a1a1aa" '
            f'stroke-dasharray="5 4"/><text x="{left + 8:.1f}" y="{top + 14:.1f}" '
            f'fill="#52525b">{escape(_clip(plan + ".*"))}</text></g>'
        )
    return parts


def _edge(source: Box, target: Box, bends: list[tuple[float, float]], spawn: bool) -> str:
    """A curve from the source's bottom to the target's top, straight down through each layer it
    crosses."""
    x, y = source.centre, source.y + NODE_HEIGHT
    end = (target.centre, target.y if target.y > y else target.y + NODE_HEIGHT)
    steps = [f"M {x:.1f} {y:.1f}"]
    for bend_x, bend_y in [*bends, end]:
        middle = (y + bend_y) / 2
        steps.append(
            f"C {x:.1f} {middle:.1f}, {bend_x:.1f} {middle:.1f}, {bend_x:.1f} {bend_y:.1f}"
        )
        x, y = bend_x, bend_y + NODE_HEIGHT
        if (bend_x, bend_y) != end:
            steps.append(f"L {x:.1f} {y:.1f}")
    dash = ' stroke-dasharray="4 3"' if spawn else ""
    return (
        f'<path d="{" ".join(steps)}" fill="none" stroke="#52525b" stroke-width="1.2"{dash} '
        'marker-end="url(#arrow)"/>'
    )


def _box(box: Box) -> str:
    fill, stroke = box.node.colours
    first, second = (_clip(line) for line in box.node.lines)
    centre = box.centre
    width = ' stroke-width="2.5"' if box.node.kind == "plan" else ""
    return (
        f'<g class="node" id={quoteattr("step-" + box.node.id)}>'
        f"<title>{escape(' · '.join(box.node.lines))}</title>"
        f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" height="{NODE_HEIGHT}" '
        f'rx="6" fill="{fill}" stroke="{stroke}"{width}/>'
        f'<text x="{centre:.1f}" y="{box.y + 17:.1f}" text-anchor="middle" font-weight="bold">'
        f"{escape(first)}</text>"
        f'<text x="{centre:.1f}" y="{box.y + 33:.1f}" text-anchor="middle" fill="#3f3f46" '
        f'font-size="11">{escape(second)}</text></g>'
    )


__all__ = ["Box", "Layout", "layers", "layout", "order", "svg"]
