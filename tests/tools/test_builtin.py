"""The built-in tools on a real workspace and against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from podium.spec.network import NetworkPolicy
from podium.spec.policy import Policy
from podium.tools import ToolContext, ToolError, builtin_tools

TOOLS = builtin_tools()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


LOOPBACK = Policy(network=NetworkPolicy(allow=["127.0.0.1"]))  # the test server's address


def context(workspace: Path, limit: int = 1024 * 1024) -> ToolContext:
    return ToolContext(
        workspace=workspace, run_id="run-1", step_id="s", output_limit_bytes=limit, policy=LOOPBACK
    )


async def call(name: str, workspace: Path, limit: int = 1024 * 1024, **arguments: object) -> str:
    return await TOOLS[name].call(dict(arguments), context(workspace, limit))


def test_builtin_tools_offer_their_specs() -> None:
    assert sorted(TOOLS) == ["http_get", "read_file", "write_file"]
    for name, tool in TOOLS.items():
        assert tool.spec.name == name
        assert tool.spec.parameters["type"] == "object"
    assert TOOLS["write_file"].spec.parameters["required"] == ["path", "content"]


async def test_write_then_read_a_file(workspace: Path) -> None:
    reply = await call("write_file", workspace, path="notes/a.txt", content="héllo\n")
    assert reply == "wrote 7 bytes to notes/a.txt"
    assert (workspace / "notes" / "a.txt").read_text() == "héllo\n"
    assert await call("read_file", workspace, path="notes/a.txt") == "héllo\n"
    await call("write_file", workspace, path="notes/a.txt", content="")
    assert (workspace / "notes" / "a.txt").read_text() == ""
    assert [p.name for p in (workspace / "notes").iterdir()] == ["a.txt"]  # no temp file left


async def test_reads_are_capped_at_the_output_limit(workspace: Path) -> None:
    (workspace / "big.txt").write_text("x" * 5000)
    text = await call("read_file", workspace, limit=100, path="big.txt")
    assert text.startswith("x" * 100 + "\n")
    assert text.endswith("[truncated: kept 100 of 5000 bytes]")


@pytest.mark.parametrize("path", ["../outside.txt", "/etc/hostname", "a/../../outside.txt"])
async def test_paths_outside_the_workspace_are_refused(workspace: Path, path: str) -> None:
    (workspace.parent / "outside.txt").write_text("secret")
    with pytest.raises(ToolError, match="outside the workspace"):
        await call("read_file", workspace, path=path)
    with pytest.raises(ToolError, match="outside the workspace"):
        await call("write_file", workspace, path=path, content="overwritten")
    assert (workspace.parent / "outside.txt").read_text() == "secret"


async def test_symlink_escapes_are_refused(workspace: Path) -> None:
    outside = workspace.parent / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (workspace / "link").symlink_to(outside)
    (workspace / "file-link").symlink_to(outside / "secret.txt")
    for path in ("link/secret.txt", "file-link"):
        with pytest.raises(ToolError, match="goes through a symbolic link"):
            await call("read_file", workspace, path=path)
        with pytest.raises(ToolError, match="goes through a symbolic link"):
            await call("write_file", workspace, path=path, content="overwritten")
    assert (outside / "secret.txt").read_text() == "secret"


async def test_file_failures_and_bad_arguments_are_tool_errors(workspace: Path) -> None:
    with pytest.raises(ToolError, match="does not exist"):
        await call("read_file", workspace, path="missing.txt")
    with pytest.raises(ToolError, match="needs a non-empty string 'path'"):
        await call("read_file", workspace)
    with pytest.raises(ToolError, match="needs a string 'content'"):
        await call("write_file", workspace, path="a.txt", content=3)
    (workspace / "binary").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ToolError, match="not UTF-8"):
        await call("read_file", workspace, path="binary")


class Handler(BaseHTTPRequestHandler):
    """/text, /json, /big, /search?q=podium, /to-text (a redirect), /to-ftp (a redirect off the
    web); else 404."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        routes = {
            "/text": (200, b"plain text", "text/plain; charset=utf-8"),
            "/json": (200, b'{"a": 1}', "application/json"),
            "/big": (200, b"y" * 5000, "text/plain"),
            "/search?q=podium": (200, b"found podium", "text/plain"),
        }
        if self.path in ("/to-text", "/to-ftp"):
            self.send_response(302)
            self.send_header("Location", "/text" if self.path == "/to-text" else "ftp://x/y")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status, body, kind = routes.get(self.path, (404, b"no such page", "text/plain"))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


async def test_http_get_returns_the_body_as_text(server: str, workspace: Path) -> None:
    assert await call("http_get", workspace, url=f"{server}/text") == "plain text"
    assert await call("http_get", workspace, url=f"{server}/to-text") == "plain text"
    assert await call("http_get", workspace, url=f"{server}/json") == '{"a": 1}'


async def test_http_get_keeps_the_query_string_of_the_url(server: str, workspace: Path) -> None:
    assert await call("http_get", workspace, url=f"{server}/search?q=podium") == "found podium"


async def test_http_get_caps_the_body(server: str, workspace: Path) -> None:
    text = await call("http_get", workspace, limit=50, url=f"{server}/big")
    assert text == "y" * 50 + "\n…[truncated: kept 50 of 5000 bytes]"


async def test_http_get_failures_are_tool_errors(server: str, workspace: Path) -> None:
    with pytest.raises(ToolError, match="HTTP 404"):
        await call("http_get", workspace, url=f"{server}/missing")
    with pytest.raises(ToolError, match="the scheme must be http or https"):
        await call("http_get", workspace, url="file:///etc/passwd")
    with pytest.raises(ToolError, match="invalid URL 'ftp://x/y'"):  # checked on redirect too
        await call("http_get", workspace, url=f"{server}/to-ftp")
    with pytest.raises(ToolError, match="connection failed"):
        await call("http_get", workspace, url="http://127.0.0.1:1/")
