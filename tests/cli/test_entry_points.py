"""Both ways in (`python -m podium.cli.app` and the `podium` script) build the whole app."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from podium.cli.app import COMMANDS

SCRIPT = Path(sys.executable).with_name("podium")


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param([sys.executable, "-m", "podium.cli.app", "--help"], id="python -m"),
        pytest.param([sys.executable, "-m", "podium.cli", "--help"], id="python -m podium.cli"),
        pytest.param([str(SCRIPT), "--help"], id="console script"),
    ],
)
def test_help_lists_every_command(argv: list[str]) -> None:
    if argv[0] == str(SCRIPT) and not SCRIPT.exists():
        pytest.skip("the podium console script is not installed next to this interpreter")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    listed = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("│ ")]
    names = [command.__name__ for command in COMMANDS]
    assert [name for name in listed if name in names] == names
    assert "prune" in names
