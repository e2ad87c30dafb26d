"""The command line's help: `--version`/`-V`, `-h` everywhere, no `<bool>`-style placeholders, and
an example at the end of every command's help that parses against that command's own options."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from importlib.metadata import version

import pytest
import typer

from podium.cli.app import COMMANDS, app, first_sentence
from podium.cli.examples import EXAMPLES

PODIUM = [sys.executable, "-m", "podium.cli.app"]
NAMES = [command.__name__ for command in COMMANDS]
ODD = re.compile(r"<(bool|str|int|float|path|int range|float range)>|\{[A-Z|]+\}|\[\[")


def _podium(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*PODIUM, *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag: str) -> None:
    result = _podium(flag)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"podium {version('podium')}\n"


def test_h_is_help_on_the_app() -> None:
    short, long = _podium("-h"), _podium("--help")
    assert short.returncode == 0, short.stderr
    assert short.stdout == long.stdout
    assert "--version  -V" in short.stdout
    assert ODD.search(short.stdout) is None, short.stdout


def test_every_command_has_examples() -> None:
    missing = [name for name in NAMES if name not in EXAMPLES]
    assert not missing, f"commands without examples in podium/cli/examples.py: {missing}"
    assert {"graph", "logs", "fork"} <= set(EXAMPLES)


@pytest.mark.parametrize("name", NAMES)
def test_each_command_help_shows_its_examples_and_no_odd_placeholders(name: str) -> None:
    short = _podium(name, "-h")
    assert short.returncode == 0, short.stderr
    if name == "graph":
        assert short.stdout == _podium(name, "--help").stdout
    assert ODD.search(short.stdout) is None, short.stdout
    assert "--help  -h" in re.sub(r" +", "  ", short.stdout)
    for line in EXAMPLES[name]:
        assert f"$ {line}" in short.stdout


@pytest.mark.parametrize("name", NAMES)
def test_each_example_parses_against_its_command(name: str) -> None:
    """Each example names the command and only arguments and options it has (the part after a
    pipe is another program)."""
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    command = group.commands[name]
    for line in EXAMPLES[name]:
        words = shlex.split(line.partition(" | ")[0])
        assert words[:2] == ["podium", name], line
        with command.make_context(name, words[2:], resilient_parsing=False) as ctx:
            assert ctx.params, line


def test_an_unregistered_example_is_still_a_real_command() -> None:
    """Examples for commands not yet registered would rot: every key is a registered command."""
    assert set(EXAMPLES) <= set(NAMES)


def test_the_command_list_gives_each_command_one_line() -> None:
    listing = _podium("--help").stdout
    for command in COMMANDS:
        summary = first_sentence(command.__doc__ or "")
        assert 10 < len(summary) <= 120, (command.__name__, summary)
        rows = [line.strip("│ ") for line in listing.splitlines()]
        row = next(line for line in rows if line.startswith(f"{command.__name__} "))
        assert summary in row  # the whole summary on the command's own line (200 columns)
