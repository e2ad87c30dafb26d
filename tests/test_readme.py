"""The README's examples run: its YAML workflow validates and runs, its Python example runs."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

import podium

README = Path(__file__).resolve().parents[1] / "README.md"
DEFAULT_URL = "http://127.0.0.1:8000/health"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()
    server.server_close()


def test_readme_yaml_workflow_runs(
    tmp_path: Path, health_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    doc = yaml.safe_load(_blocks("yaml")[0])

    async def main() -> podium.RunState:
        async with await podium.Engine.open(tmp_path / "p.db") as engine:
            return await engine.run(doc, {"url": health_url})

    state = podium.run_sync(main())
    assert state.status == "succeeded", state.completed_error
    assert "health: succeeded" in (tmp_path / "out" / "nightly.md").read_text()


def test_readme_python_example_runs(
    tmp_path: Path,
    health_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    code = _blocks("python")[0].replace(DEFAULT_URL, health_url)
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "run.completed" in out
    assert "succeeded /dev/" in out or "succeeded Filesystem" in out


def test_readme_agent_file_loads(tmp_path: Path) -> None:
    from podium.agents import AgentCatalog

    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "researcher.md").write_text(_blocks("markdown")[0])
    (tmp_path / "agents" / "backup.md").write_text("---\nname: backup-researcher\n---\nBackup.\n")
    agent = AgentCatalog.load(tmp_path, None).resolve("Researcher")
    assert agent.model == "openai:gpt-4o-mini"
    assert agent.fallbacks == ["backup-researcher"]
    assert "mcp:search" in agent.tools
