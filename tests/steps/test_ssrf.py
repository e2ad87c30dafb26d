"""The SSRF guard, attacked: URL spellings of loopback, private, link-local, CGNAT, multicast,
metadata and IPv4-in-IPv6 addresses through an http step run by the engine and through
`http_get`, against a real listener that must see 0 connections; redirects re-checked on every
hop; credentials dropped on a cross-origin redirect; the allow-list; the dial target."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from podium import Engine
from podium.config import load_config
from podium.errors import SpecError, StepExecutionError
from podium.spec.model import HttpStep
from podium.spec.network import NetworkPolicy
from podium.spec.policy import Policy, effective
from podium.steps.base import StepContext
from podium.steps.http import HttpExecutor
from podium.steps.netguard import GuardedBackend, checked_addresses
from podium.tools import ToolContext, ToolError, builtin_tools


class Listener:
    """A TCP listener on every local address (dual-stack `::`, so 127.0.0.0/8, ::1 and the
    host's own addresses) that counts the connections it accepts."""

    def __init__(self) -> None:
        try:
            self.sock = socket.create_server(("::", 0), family=socket.AF_INET6, dualstack_ipv6=True)
        except OSError:
            self.sock = socket.create_server(("0.0.0.0", 0))
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    held = Listener()
    yield held
    held.close()


def vectors(port: int) -> list[str]:
    """URLs that all mean the listener or another refused range (58 of them)."""
    p = port
    return [
        *(f"http://{host}:{p}/" for host in LOOPBACK_HOSTS),
        *(f"http://{host}/" for host in FAR_HOSTS),
        f"http://example.com@127.0.0.1:{p}/",
        f"http://user:pass@localhost:{p}/",
        f"https://127.0.0.1:{p}/",
        f"http://127.0.0.1:{p}@127.0.0.2:{p}/",
        f"HTTP://LocalHost:{p}/path?q=1",
    ]


LOOPBACK_HOSTS = [
    "127.0.0.1", "127.1", "127.0.1", "127.0.1.3", "127.255.255.254", "2130706433", "0x7f000001",
    "017700000001", "0x7f.1", "0x7f.0.0.1", "0177.0.0.1", "0177.1", "[::1]",
    "[0:0:0:0:0:0:0:1]", "[::ffff:127.0.0.1]", "[0:0:0:0:0:ffff:7f00:1]", "[::ffff:7f00:1]",
    "[::127.0.0.1]", "[2002:7f00:1::]", "[64:ff9b::7f00:1]", "localhost", "LOCALHOST.",
    "foo.localhost", "a.b.LocalHost.", "0.0.0.0", "0", "[::]", "0.0.0.1",
]  # fmt: skip
FAR_HOSTS = [
    "10.0.0.1", "10.255.255.254", "172.16.0.1", "172.31.255.1", "192.168.0.1",
    "192.168.1.1:8080", "100.64.0.1", "100.127.255.254", "169.254.169.254", "169.254.0.1",
    "[fd00:ec2::254]", "[::ffff:169.254.169.254]", "100.100.100.200", "[fe80::1]",
    "[fc00::1]", "[fd12:3456::1]", "224.0.0.1", "239.255.255.250", "[ff02::1]",
    "255.255.255.255", "240.0.0.1", "198.18.0.1", "192.0.0.1",
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
]  # fmt: skip
PARSER_REFUSED = {"0177.0.0.1"}  # httpx already rejects these spellings as invalid


def expected_type(url: str) -> str:
    return "usage" if any(f"//{host}:" in url for host in PARSER_REFUSED) else "network"


async def test_http_steps_reach_no_refused_address(tmp_path: Path, listener: Listener) -> None:
    urls = vectors(listener.port)
    assert len(urls) >= 40
    steps = [{"id": f"v{i}", "kind": "http", "url": url} for i, url in enumerate(urls)]
    workflow = {"name": "ssrf", "on_failure": "collect", "steps": steps}
    async with await Engine.open(tmp_path / "p.db", workspace=tmp_path) as engine:
        state = await engine.run(workflow)
    through = [
        url for i, url in enumerate(urls) if state.steps[f"v{i}"].error_type != expected_type(url)
    ]
    assert (len(urls), through, listener.accepted) == (len(urls), [], 0)
    assert "SSRF guard" in (state.steps["v0"].error or "")
    assert '[policy.network] allow = ["127.0.0.1"]' in (state.steps["v0"].error or "")


async def test_http_get_reaches_no_refused_address(tmp_path: Path, listener: Listener) -> None:
    tool = builtin_tools()["http_get"]
    ctx = ToolContext(workspace=tmp_path, run_id="r", step_id="s", output_limit_bytes=1 << 20)

    async def attempt(url: str) -> str:
        try:
            return "through: " + await tool.call({"url": url}, ctx)
        except ToolError as exc:
            return str(exc)

    urls = vectors(listener.port)
    answers = await asyncio.gather(*(attempt(url) for url in urls))
    mark = {"network": "SSRF guard", "usage": "invalid URL"}
    through = [u for u, a in zip(urls, answers, strict=True) if mark[expected_type(u)] not in a]
    assert (through, listener.accepted) == ([], 0)


class Hops(BaseHTTPRequestHandler):
    """`/to?<url>` redirects there; anything else answers with the headers it received."""

    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        if self.path.startswith("/to?"):
            self.send_response(302)
            self.send_header("Location", self.path[4:])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        Hops.seen.append({k.lower(): v for k, v in self.headers.items()})
        body = b"landed"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def hops() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hops)
    Hops.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def context(tmp_path: Path, *allow: str) -> StepContext:
    policy = Policy(network=NetworkPolicy(allow=list(allow)))
    return StepContext(
        run_id="r", step_id="s", attempt=1, idempotency_key="r:s:1", workspace=tmp_path,
        output_limit_bytes=1 << 20, policy=policy,
    )  # fmt: skip


async def test_every_redirect_hop_is_checked(tmp_path: Path, hops: int, listener: Listener) -> None:
    executor = HttpExecutor()
    ctx = context(tmp_path, "127.0.0.1")
    p = listener.port
    hosts = ["[::1]", "localhost.", "127.0.0.2", "0x7f000002", "[::ffff:127.0.0.3]", "10.0.0.1"]
    targets = [f"http://{host}:{p}/" for host in hosts] + ["http://169.254.169.254/"]
    through = []
    for target in targets:
        step = HttpStep(id="s", url=f"http://127.0.0.1:{hops}/to?{target}")
        try:
            await executor.execute(step, ctx)
            through.append(target)
        except StepExecutionError as exc:
            if exc.error_type != "network":
                through.append(f"{target}: {exc}")
    await executor.aclose()
    assert (through, listener.accepted) == ([], 0)


SECRETS = {
    "Authorization": "Bearer s3cret",
    "Cookie": "session=s3cret",
    "X-Api-Key": "s3cret",
    "Proxy-Authorization": "Basic s3cret",
    "X-Auth-Token": "s3cret",
    "X-Client-Secret": "s3cret",
    "Private-KEY": "s3cret",
}


async def test_a_cross_origin_redirect_drops_credentials(tmp_path: Path, hops: int) -> None:
    executor = HttpExecutor()
    ctx = context(tmp_path, "127.0.0.1", "localhost")
    headers = {**SECRETS, "X-Trace": "kept"}
    other = f"http://localhost:{hops}/landed"
    same = f"http://127.0.0.1:{hops}/landed"
    for target in (other, same):
        step = HttpStep(id="s", url=f"http://127.0.0.1:{hops}/to?{target}", headers=headers)
        assert (await executor.execute(step, ctx)).output == "landed"
    await executor.aclose()
    crossed, stayed = Hops.seen
    leaked = [name for name in SECRETS if name.lower() in crossed]
    assert (leaked, crossed["x-trace"]) == ([], "kept")
    kept = [name for name in SECRETS if name.lower() in stayed]  # httpx drops Cookie on any hop
    assert kept == [name for name in SECRETS if name != "Cookie"]  # same origin: headers kept


async def test_an_allow_list_opens_only_what_it_names(tmp_path: Path, hops: int) -> None:
    executor = HttpExecutor()
    url = f"http://127.0.0.1:{hops}/page"
    for allow in (["127.0.0.1"], ["127.0.0.0/8"], ["::ffff:127.0.0.1/128", "127.0.0.1"]):
        result = await executor.execute(HttpStep(id="s", url=url), context(tmp_path, *allow))
        assert result.output == "landed"
    refused = 0
    for allow in ([], ["127.0.0.2"], ["10.0.0.0/8"], ["*.localhost"], ["localhost"]):
        with pytest.raises(StepExecutionError, match="SSRF guard") as caught:
            await executor.execute(HttpStep(id="s", url=url), context(tmp_path, *allow))
        refused += caught.value.error_type == "network"
    await executor.aclose()
    assert (refused, len(Hops.seen)) == (5, 3)  # a pooled connection is not reused unchecked


async def test_the_connection_goes_to_the_checked_address(listener: Listener) -> None:
    network = NetworkPolicy(allow=["localhost"])
    checked = await checked_addresses("localhost", listener.port, network)
    assert all(address.is_loopback for address in checked)
    stream = await GuardedBackend(network).connect_tcp("localhost", listener.port, timeout=5)
    peer = stream.get_extra_info("socket").getpeername()[0]
    await stream.aclose()
    assert ipaddress.ip_address(peer) in checked
    with pytest.raises(StepExecutionError, match=r"localhost \(localhost\): it is a loopback"):
        await GuardedBackend(NetworkPolicy()).connect_tcp("localhost", listener.port)


def test_the_allow_list_is_validated_merged_and_recorded(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'http://x/' is not a host name"):
        NetworkPolicy(allow=["http://x/"])
    project = Policy(network=NetworkPolicy(allow=["10.0.0.0/8"]))
    workflow = Policy(network=NetworkPolicy(allow=["*.corp.example", "10.0.0.0/8"]))
    merged, problems = effective(project, workflow)
    assert problems == []
    assert merged.record()["network"] == {"allow": ["10.0.0.0/8", "*.corp.example"]}
    assert effective(project, None)[0].network.allow == ["10.0.0.0/8"]
    (tmp_path / "podium.toml").write_text('[policy.network]\nallow = ["api.internal"]\n')
    assert load_config(tmp_path).policy.network.allow == ["api.internal"]


async def test_a_bad_allow_entry_in_a_workflow_is_a_spec_error(tmp_path: Path) -> None:
    workflow = {
        "name": "bad",
        "policy": {"network": {"allow": ["10.0.0.0/33"]}},
        "steps": [{"id": "s", "kind": "http", "url": "http://10.0.0.1/"}],
    }
    async with await Engine.open(tmp_path / "p.db", workspace=tmp_path) as engine:
        with pytest.raises(SpecError, match=r"policy\.network\.allow.*CIDR"):
            await engine.submit(workflow)
