"""`podium validate` and `podium run` check the tools an agent lists: an MCP server that is not
configured is named, with a did-you-mean, before anything runs or is recorded."""

from __future__ import annotations

from .conftest import Cli

AGENT = """---
name: helper
model: scripted:none.yaml
tools: [read_file, mcp:filesystem]
---
You help.
"""
CONFIG = """[mcpServers.filesytem]
command = "python"
args = ["-c", "pass"]
"""
WORKFLOW = "name: w\nsteps:\n  - {id: ask, kind: agent, agent: helper, prompt: hi}\n"


def test_an_unconfigured_mcp_server_is_named_before_anything_runs(cli: Cli) -> None:
    (cli.folder / "agents").mkdir()
    cli.write("agents/helper.md", AGENT)
    cli.write("podium.toml", CONFIG)
    workflow = cli.write("w.yaml", WORKFLOW)
    checked = cli("validate", str(workflow), "--agents", str(cli.folder))
    assert checked.returncode == 2
    assert "steps[0].agent" in checked.stderr
    assert "filesystem" in checked.stderr
    assert "filesytem" in checked.stderr  # the did-you-mean
    run = cli("run", str(workflow), "--agents", str(cli.folder))
    assert run.returncode == 2
    assert "filesystem" in run.stderr
    assert not cli.db.exists()  # nothing was recorded: no store was even made


def test_a_workflow_whose_agents_have_their_tools_validates(cli: Cli) -> None:
    (cli.folder / "agents").mkdir()
    cli.write("agents/helper.md", AGENT.replace("mcp:filesystem", "mcp:filesytem"))
    cli.write("podium.toml", CONFIG)
    cli.write("none.yaml", 'agents:\n  "*": [{content: hi}]\n')  # the agent's scripted model
    workflow = cli.write("w.yaml", WORKFLOW)
    checked = cli("validate", str(workflow), "--agents", str(cli.folder))
    assert checked.returncode == 0, checked.stderr
    assert "ok: w (1 step)" in checked.stdout
