"""Warnings about a valid workflow: what it asks for is allowed, but probably not what was meant.
Today one: a `run:` string without `shell:` that uses shell syntax no shell will ever read."""

from __future__ import annotations

import re
from collections.abc import Iterator

from podium.errors import Problem
from podium.spec.loop import walk
from podium.spec.model import ShellStep, Workflow

_TEMPLATE = re.compile(r"\$?\$\{\{.*?\}\}", re.DOTALL)  # rendered (or escaped) before the split
_EXPANSION = r"\$(?:[A-Za-z_][A-Za-z0-9_]*|[{(])"
_UNQUOTED = re.compile(rf"&&|\|\||[|;<>`*]|(?<!\S)&(?!\S)|(?<!\S)~|{_EXPANSION}")
_IN_DOUBLE_QUOTES = re.compile(rf"`|{_EXPANSION}")  # what sh still expands inside "…"


def workflow_warnings(workflow: Workflow) -> list[Problem]:
    """A warning per shell step whose `run` string, split into arguments without a shell, would
    pass shell syntax (`&&`, `|`, `$HOME`, `>`, globs…) to the program as plain text."""
    warnings = []
    for where, step in walk(workflow.steps):  # loop bodies included
        if isinstance(step, ShellStep) and isinstance(step.run, str) and step.shell is None:
            found = list(dict.fromkeys(shell_syntax(step.run)))
            if found:
                warnings.append(Problem(f"{where}.run", _message(found)))
    return warnings


def shell_syntax(command: str) -> Iterator[str]:
    """The shell operators, expansions and globs in `command` that quoting does not protect
    (single quotes protect everything, double quotes all but `$…` and backticks)."""
    text = _TEMPLATE.sub("x", command)
    position = 0
    while position < len(text):
        char = text[position]
        if char == "\\":
            position += 2
            continue
        if char in "'\"":
            end = text.find(char, position + 1)
            end = len(text) if end < 0 else end
            if char == '"':
                yield from _matches(_IN_DOUBLE_QUOTES, text[position + 1 : end])
            position = end + 1
            continue
        match = _UNQUOTED.match(text, position)
        if match is not None:
            yield match.group()
            position = match.end()
        else:
            position += 1


def _matches(pattern: re.Pattern[str], text: str) -> Iterator[str]:
    for match in pattern.finditer(text):
        yield match.group()


def _message(found: list[str]) -> str:
    listed = ", ".join(f"`{token}`" for token in found)
    return (
        f"{listed} would reach the program as plain text: without `shell:` the command is split "
        "into arguments and no shell reads it; set `shell: sh` (or bash) for pipes, `&&`, "
        "redirections, variables and globs, or put it in single quotes if it is meant literally"
    )
