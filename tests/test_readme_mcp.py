"""The README's agent example with an MCP server runs from the CLI as written: the official
filesystem server comes from npm (`npx`), so this is in the `real` tier."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.real
ROOT = Path(__file__).resolve().parents[1]


def _command() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    lines = [line for block in blocks for line in block.splitlines()]
    (line,) = [line for line in lines if "examples/mcp/notes.yaml" in line]
    return shlex.split(line)


def test_the_readme_mcp_example_runs_as_written(tmp_path: Path) -> None:
    argv = _command()
    assert argv[0] == "podium"
    podium = [sys.executable, "-m", "podium.cli.app"]
    db = ["--db", str(tmp_path / "p.db")]
    done = subprocess.run(
        [*podium, *argv[1:], *db], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = done.stdout.split()[1]
    events = subprocess.run(
        [*podium, "events", run_id, "--json", *db], cwd=ROOT, capture_output=True, text=True
    )
    called = [json.loads(line) for line in events.stdout.splitlines()]
    (tool,) = [e for e in called if e["kind"] == "tool.called"]
    assert tool["tool"] == "fs__read_text_file"
    assert "Tuesday, at the harbour" in tool["result"]  # read by the real server
