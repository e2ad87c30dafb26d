"""Issue 8, defect 13: a `run:` string without `shell:` that uses shell syntax is passed as
arguments, so `validate` and `run` warn (exit unchanged) and suggest `shell: sh`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from podium.spec.lint import shell_syntax, workflow_warnings
from podium.spec.validate import validate_workflow

_SHELL_STEP = "name: w\nsteps:\n  - id: a\n    kind: shell\n    run: {run}\n"


@pytest.mark.parametrize(
    ("command", "found"),
    [
        ("echo a && echo b", ["&&"]),
        ("ls | wc -l", ["|"]),
        ("echo $HOME", ["$HOME"]),
        ("echo a; echo b", [";"]),
        ("echo a > out.txt", [">"]),
        ("echo `date`", ["`", "`"]),
        ("ls *.txt", ["*"]),
        ('echo "$HOME"', ["$HOME"]),  # sh expands inside double quotes; argv does not
        ("cat ~/notes", ["~"]),
        ("sleep 1 &", ["&"]),
    ],
)
def test_shell_syntax_outside_quotes_is_found(command: str, found: list[str]) -> None:
    assert list(shell_syntax(command)) == found


@pytest.mark.parametrize(
    "command",
    [
        "echo 'a && b | c $HOME > *'",
        'echo "a && b; c > d | *"',
        "curl https://example.com/?a=1&b=2",
        "echo ${{ inputs.who }} $${{ literal }}",
        "echo a\\;b",
        'python -c "print(2*3)"',
        "echo 100%",
    ],
)
def test_quoted_escaped_or_templated_text_is_not_flagged(command: str) -> None:
    assert list(shell_syntax(command)) == []


def test_only_run_strings_without_a_shell_are_warned_about() -> None:
    steps = [
        {"id": "a", "kind": "shell", "run": "echo $HOME && ls | wc -l"},
        {"id": "b", "kind": "shell", "shell": "sh", "run": "echo $HOME && ls"},
        {"id": "c", "kind": "shell", "run": ["echo", "$HOME", "&&"]},
        {"id": "d", "kind": "shell", "run": "echo plain"},
    ]
    warnings = workflow_warnings(validate_workflow({"name": "w", "steps": steps}))
    assert [w.path for w in warnings] == ["steps[0].run"]
    assert warnings[0].message.startswith("`$HOME`, `&&`, `|` would reach the program as plain")
    assert "set `shell: sh`" in warnings[0].message


def _cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "podium.cli.app", *args, "--db", str(folder / "podium.db")]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=folder)


def test_validate_and_run_warn_on_stderr_and_still_exit_0(tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text(_SHELL_STEP.format(run="echo $HOME && echo done"))
    checked = _cli(tmp_path, "validate", "w.yaml")
    assert checked.returncode == 0, checked.stderr
    assert "ok: w (1 step)" in checked.stdout
    assert checked.stderr.startswith("warning: steps[0].run: `$HOME`, `&&` would reach")
    ran = _cli(tmp_path, "run", "w.yaml")
    assert ran.returncode == 0, ran.stderr
    assert "warning: steps[0].run:" in ran.stderr


def test_a_clean_workflow_prints_no_warning(tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text(_SHELL_STEP.format(run="echo hi"))
    checked = _cli(tmp_path, "validate", "w.yaml")
    assert checked.returncode == 0
    assert "warning" not in checked.stderr
