"""The project configuration from the real CLI: a podium.toml naming an MCP server and the model
lets `tools: [mcp:fs]` work; `retry` and `resume` from another folder use the configuration
recorded on the run; bad configurations and unknown providers exit 2 with nothing recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import COMMAND_TIMEOUT_SECONDS, Cli

MCP_SERVER = Path(__file__).resolve().parents[1] / "tools" / "mcp_server.py"

SCRIPT = """
model: scripted-config
agents:
  adder:
    - tool_calls: [{name: fs__add, arguments: {a: 2, b: 3}}]
    - content: "the sum is 5"
"""

AGENT = """---
name: adder
tools: ["mcp:fs"]
---
Add numbers with the fs server's add tool.
"""

WORKFLOW = """
name: sums
steps:
  - {id: gate, kind: shell, run: "test -f ok"}
  - {id: sum, kind: agent, agent: adder, prompt: "Add 2 and 3.", needs: [gate]}
"""


def _project(cli: Cli) -> Path:
    """podium.toml (model, agents folder, the MCP server) and the files it names."""
    cli.write("script.yaml", SCRIPT)
    (cli.folder / "team").mkdir()
    (cli.folder / "team" / "adder.md").write_text(AGENT)
    cli.write("wf.yaml", WORKFLOW)
    server = json.dumps([str(MCP_SERVER)])
    return cli.write(
        "podium.toml",
        f'model = "scripted:{cli.folder / "script.yaml"}"\nagents = "team"\n\n'
        f'[mcpServers.fs]\ncommand = "{sys.executable}"\nargs = {server}\n',
    )


def _elsewhere(cli: Cli, *args: str) -> subprocess.CompletedProcess[str]:
    """A command run from another folder, with no project file there or above."""
    other = cli.folder / "elsewhere"
    other.mkdir(exist_ok=True)
    return subprocess.run(
        cli.argv(*args),
        cwd=other,
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
    )


def _created(cli: Cli, run_id: str) -> dict[str, object]:
    first: dict[str, object] = json.loads(cli("events", run_id, "--json").stdout.splitlines()[0])
    return first


def test_an_mcp_tool_runs_from_the_cli_and_retry_elsewhere_uses_the_recorded_config(
    cli: Cli,
) -> None:
    config = _project(cli)
    failed = cli("run", "wf.yaml", "--run-id", "r1")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    recorded = _created(cli, "r1")["config"]
    assert isinstance(recorded, dict)
    assert (recorded["path"], recorded["mcp_servers"]) == (str(config), ["fs"])
    assert recorded["agents"] == str(cli.folder / "team")
    cli.write("ok", "")
    retried = _elsewhere(cli, "retry", "r1", "gate")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "changed" not in retried.stdout
    doc = cli.show("r1")
    steps = {s["id"]: s for s in doc["steps"]}
    assert steps["sum"]["status"] == "succeeded"
    assert "the sum is 5" in json.dumps(steps["sum"])
    events = [json.loads(line) for line in cli("events", "r1", "--json").stdout.splitlines()]
    called = [(e["tool"], e["ok"]) for e in events if e["kind"] == "tool.called"]
    assert called == [("fs__add", True)]  # the MCP server the configuration names


def test_a_changed_config_is_noted_and_a_missing_one_is_an_error(cli: Cli) -> None:
    config = _project(cli)
    assert cli("run", "wf.yaml", "--run-id", "r2").returncode == 1
    cli.write("ok", "")
    config.write_text(config.read_text() + '\n[providers.spare]\nbase_url = "http://x/v1"\n')
    retried = _elsewhere(cli, "retry", "r2", "gate")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert f"configuration {config} changed since the run started" in retried.stdout
    assert cli("run", "wf.yaml", "--run-id", "r3").returncode == 0
    (cli.folder / "ok").unlink()
    assert cli("run", "wf.yaml", "--run-id", "r4").returncode == 1
    config.unlink()
    gone = _elsewhere(cli, "retry", "r4", "gate")
    assert gone.returncode == 2
    assert f"{config} is gone" in gone.stderr


def test_bad_configurations_and_unknown_providers_exit_2_with_nothing_recorded(cli: Cli) -> None:
    config = _project(cli)
    ghost = cli("run", "wf.yaml", "--model", "ghost:m")
    assert ghost.returncode == 2
    assert "unknown model provider 'ghost'" in ghost.stderr
    config.write_text(config.read_text() + "\n[mcpServers.web]\ntype = 'sse'\nurl = 'http://x'\n")
    bad = cli("run", "wf.yaml")
    assert bad.returncode == 2
    assert f"{config}: mcpServers.web.type" in bad.stderr
    assert cli("validate", "wf.yaml").returncode == 2
    assert cli("runs", "--json").stdout.strip() in ("", "[]")
