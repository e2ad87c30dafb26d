"""A `Picture` drawn as plain SVG without Graphviz: a layered layout (longest-path layers, a few
barycentre passes to untangle each layer, plan children kept side by side) of boxes, labels and
arrows. Pure."""

from __future__ import annotations

from collections import defaultdict
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


def order(picture: Picture, ranks: list[list[str]]) -> list[list[str]]:
    """Barycentre sweeps down and up; a plan's children stay next to each other."""
    preds: dict[str, list[str]] = defaultdict(list)
    succs: dict[str, list[str]] = defaultdict(list)
    for edge in picture.edges:
        preds[edge.target].append(edge.source)
        succs[edge.source].append(edge.target)
    group = {node.id: node.group or node.id for node in picture.nodes}
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


def layout(picture: Picture) -> list[Box]:
    """Boxes row by row, each row centred on the widest."""
    nodes = {node.id: node for node in picture.nodes}
    rows = [
        rank[i : i + ROW_WIDTH]
        for rank in order(picture, layers(picture))
        for i in range(0, len(rank), ROW_WIDTH)
    ]
    widths = [[_width(nodes[n]) for n in row] for row in rows]
    widest = max((sum(w) + GAP_X * (len(w) - 1) for w in widths), default=0.0)
    boxes: list[Box] = []
    for index, (row, row_widths) in enumerate(zip(rows, widths, strict=True)):
        x = MARGIN + (widest - sum(row_widths) - GAP_X * (len(row) - 1)) / 2
        y = MARGIN + TITLE_HEIGHT + index * (NODE_HEIGHT + GAP_Y)
        for node_id, width in zip(row, row_widths, strict=True):
            boxes.append(Box(nodes[node_id], x, y, width))
            x += width + GAP_X
    return boxes


def _width(node: Node) -> float:
    longest = max(len(_clip(line)) for line in node.lines)
    return max(MIN_NODE_WIDTH, longest * CHAR_WIDTH + 20)


def _clip(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_LABEL_CHARS else flat[: MAX_LABEL_CHARS - 1] + "…"


# ---------------------------------------------------------------------------------------- svg


def svg(picture: Picture) -> str:
    """A standalone SVG document of the picture."""
    boxes = layout(picture)
    at = {box.node.id: box for box in boxes}
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
    parts += [_edge(at[e.source], at[e.target], e.spawn) for e in picture.edges]
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


def _edge(source: Box, target: Box, spawn: bool) -> str:
    x1, y1 = source.centre, source.y + NODE_HEIGHT
    x2, y2 = target.centre, target.y
    if y2 <= y1:  # a back edge, which only a cyclic picture has: go round the side
        y2 = target.y + NODE_HEIGHT
    middle = (y1 + y2) / 2
    dash = ' stroke-dasharray="4 3"' if spawn else ""
    return (
        f'<path d="M {x1:.1f} {y1:.1f} C {x1:.1f} {middle:.1f}, {x2:.1f} {middle:.1f}, '
        f'{x2:.1f} {y2:.1f}" fill="none" stroke="#52525b" stroke-width="1.2"{dash} '
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


__all__ = ["Box", "layers", "layout", "order", "svg"]
