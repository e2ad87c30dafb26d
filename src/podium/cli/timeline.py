"""`podium show RUN --timeline`: a Gantt chart of a run's steps in the terminal, one row per step
(plan children indented under their plan), each bar placed by its start and end and coloured by
its status, so what ran in parallel can be seen."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.text import Text

from podium.cli.render import STATUS_STYLES, duration, span
from podium.core.state import RunState, StepState, StepStatus

MAX_LABEL = 28
TOOK_WIDTH = 7
MIN_BAR_WIDTH = 10
BAR = "█"
INDENT = "  "


def timeline_renderable(state: RunState, now: datetime | None = None) -> RenderableType:
    """The chart of `state`; a running step's bar reaches `now` (default: the current time)."""
    return _Timeline(state, now or datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class _Timeline:
    state: RunState
    now: datetime

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        rows = list(ordered(self.state))
        label_width = min(max((len(label) for label, _ in rows), default=4), MAX_LABEL)
        width = max(options.max_width - label_width - TOOK_WIDTH - 2, MIN_BAR_WIDTH)
        start, end = self._window()
        scale = width / max((end - start).total_seconds(), 1e-9)
        yield _axis(label_width, width, span(start, end))
        for label, step in rows:
            line = Text(_fit(label, label_width).ljust(label_width) + " ")
            line.append_text(self._bar(step, start, scale, width))
            line.append(" " + duration(span(step.started_at, self._end(step))).rjust(TOOK_WIDTH))
            yield line

    def _window(self) -> tuple[datetime, datetime]:
        starts = [s.started_at for s in self.state.steps.values() if s.started_at is not None]
        ends = [e for s in self.state.steps.values() if (e := self._end(s)) is not None]
        first = min([self.state.created_at, *starts])
        return first, max([first, *ends])

    def _end(self, step: StepState) -> datetime | None:
        if step.finished_at is not None:
            return step.finished_at
        return self.now if step.status is StepStatus.RUNNING else None

    def _bar(self, step: StepState, start: datetime, scale: float, width: int) -> Text:
        style = STATUS_STYLES.get(str(step.status), "")
        end = self._end(step)
        if step.started_at is None or end is None:
            return Text(f"({step.status})".ljust(width), style="dim")
        left = min(int((step.started_at - start).total_seconds() * scale), width - 1)
        right = max(left + 1, min(round((end - start).total_seconds() * scale), width))
        bar = Text(" " * left)
        bar.append(BAR * (right - left), style=style)
        bar.append(" " * (width - right))
        return bar


def ordered(state: RunState) -> Iterator[tuple[str, StepState]]:
    """(label, step) in workflow order, each plan's children right under it, indented."""
    children: dict[str, list[StepState]] = {}
    for step in state.steps.values():
        if step.parent is not None:
            children.setdefault(step.parent, []).append(step)
    for step in state.steps.values():
        if step.parent is None:
            yield from _with_children(step, children, 0)


def _with_children(
    step: StepState, children: dict[str, list[StepState]], depth: int
) -> Iterator[tuple[str, StepState]]:
    yield INDENT * depth + step.id, step
    for child in children.get(step.id, []):
        yield from _with_children(child, children, depth + 1)


def _axis(label_width: int, width: int, total: float | None) -> Text:
    """`0s ──── 2.5s ──── 5.0s` under the step column's blank header."""
    ends = ("0s", duration(total))
    middle = duration((total or 0.0) / 2)
    fill = max(width - len(ends[0]) - len(ends[1]) - len(middle), 2)
    rule = "─" * (fill // 2) + middle + "─" * (fill - fill // 2)
    return Text(" " * (label_width + 1) + ends[0] + rule + ends[1], style="dim")


def _fit(label: str, width: int) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"
