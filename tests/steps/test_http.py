"""The http executor against a real HTTP server on 127.0.0.1 (stdlib, in a thread)."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from podium.errors import StepExecutionError
from podium.spec.model import HttpStep
from podium.spec.network import NetworkPolicy
from podium.spec.policy import Policy
from podium.steps.base import StepContext, StepResult
from podium.steps.http import HttpExecutor

from .conftest import ContextFactory

LOOPBACK = Policy(network=NetworkPolicy(allow=["127.0.0.1"]))


@pytest.fixture
def make_ctx(make_ctx: ContextFactory) -> ContextFactory:
    """The shared factory with loopback allowed: the server is on 127.0.0.1 (test_ssrf.py
    shows it is refused by default)."""
    return lambda **overrides: make_ctx(**({"policy": LOOPBACK} | overrides))


class Arrivals:
    """The request paths the server has begun to answer, for tests to wait on."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._changed = threading.Condition()

    def note(self, path: str) -> None:
        with self._changed:
            self._seen.add(path)
            self._changed.notify_all()

    def wait(self, path: str, timeout_seconds: float = 10.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: path in self._seen, timeout_seconds)


ARRIVALS = Arrivals()


class Handler(BaseHTTPRequestHandler):
    """/echo, /status/N, /redirect/N, /big/N, /slow/S[/tag], /text, /not-json; else 404."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.route()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def route(self) -> None:
        path = urlsplit(self.path).path
        parts = path.strip("/").split("/")
        if parts[0] == "echo":
            self.echo()
        elif parts[0] == "status":
            self.send(int(parts[1]), f"status {parts[1]} body".encode(), "text/plain")
        elif parts[0] == "redirect":
            hops = int(parts[1])
            self.send_response(302)
            self.send_header("Location", "/echo" if hops <= 1 else f"/redirect/{hops - 1}")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif parts[0] == "big":
            self.send(200, b"y" * int(parts[1]), "text/plain")
        elif parts[0] == "text":
            self.send(200, "plain é".encode(), "text/plain; charset=utf-8")
        elif parts[0] == "slow":
            ARRIVALS.note(self.path)
            time.sleep(float(parts[1]))  # the behaviour under test: a server slow to answer
            self.send(200, b"late", "text/plain")
        elif parts[0] == "not-json":
            self.send(200, b"<html>", "application/json")
        else:
            self.send(404, b"no such page", "text/plain")

    def echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        echoed = {
            "method": self.command,
            "path": self.path,
            "query": parse_qs(urlsplit(self.path).query),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        self.send(200, json.dumps(echoed).encode(), "application/json")

    def send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up early (the cancellation tests) is expected


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
async def executor() -> AsyncIterator[HttpExecutor]:
    executor = HttpExecutor()
    yield executor
    await executor.aclose()


@pytest.fixture
def send(executor: HttpExecutor, ctx: StepContext) -> Any:
    async def send(url: str, context: StepContext = ctx, **fields: Any) -> StepResult:
        return await executor.execute(HttpStep(id="s", url=url, **fields), context)

    return send


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_get_json_with_idempotency_key(send: Any, base_url: str) -> None:
    result = await send(f"{base_url}/echo", query={"q": "a b", "n": 2, "many": [1, 2]})
    assert result.meta == {"status": 200}
    echoed = result.output
    assert echoed["method"] == "GET"
    assert echoed["headers"]["idempotency-key"] == "run-1:s:1"
    assert echoed["query"] == {"q": ["a b"], "n": ["2"], "many": ["1", "2"]}
    assert echoed["body"] == ""


async def test_query_merges_with_the_urls_own_query_string(send: Any, base_url: str) -> None:
    only_url = await send(f"{base_url}/echo?keep=1")
    assert only_url.output["query"] == {"keep": ["1"]}
    both = await send(f"{base_url}/echo?keep=1", query={"q": "x"})
    assert both.output["query"] == {"keep": ["1"], "q": ["x"]}


async def test_step_can_set_its_own_idempotency_key(send: Any, base_url: str) -> None:
    result = await send(f"{base_url}/echo", headers={"idempotency-key": "mine", "X-A": "1"})
    assert result.output["headers"]["idempotency-key"] == "mine"
    assert result.output["headers"]["x-a"] == "1"


async def test_json_body(send: Any, base_url: str) -> None:
    echoed = (await send(f"{base_url}/echo", method="POST", body={"a": [1, "é"]})).output
    assert echoed["method"] == "POST"
    assert echoed["headers"]["content-type"] == "application/json"
    assert json.loads(echoed["body"]) == {"a": [1, "é"]}


async def test_text_body(send: Any, base_url: str) -> None:
    echoed = (await send(f"{base_url}/echo", method="PUT", body="hello")).output
    assert echoed["body"] == "hello"
    assert echoed["headers"]["content-type"] == "text/plain; charset=utf-8"


async def test_text_response(send: Any, base_url: str) -> None:
    assert (await send(f"{base_url}/text")).output == "plain é"


async def test_mislabelled_json_stays_text(send: Any, base_url: str) -> None:
    assert (await send(f"{base_url}/not-json")).output == "<html>"
    with pytest.raises(StepExecutionError, match="not JSON") as info:
        await send(f"{base_url}/not-json", output="json")
    assert info.value.retryable is False


async def test_output_schema(send: Any, base_url: str) -> None:
    schema = {"type": "object", "required": ["method"]}
    assert (await send(f"{base_url}/echo", output=schema)).output["method"] == "GET"
    with pytest.raises(StepExecutionError, match=r"output does not match its schema at \$: "):
        await send(f"{base_url}/echo", output={"required": ["missing"]})


async def test_redirects_are_followed(send: Any, base_url: str) -> None:
    result = await send(f"{base_url}/redirect/3")
    assert result.output["path"] == "/echo"
    assert result.output["headers"]["idempotency-key"] == "run-1:s:1"


async def test_too_many_redirects(send: Any, base_url: str) -> None:
    with pytest.raises(StepExecutionError, match="more than 5 redirects") as info:
        await send(f"{base_url}/redirect/9")
    assert info.value.retryable is False


async def test_404_is_permanent(send: Any, base_url: str) -> None:
    with pytest.raises(StepExecutionError) as info:
        await send(f"{base_url}/missing")
    assert str(info.value) == f"HTTP 404 from GET {base_url}/missing: no such page"
    assert info.value.retryable is False


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_429_and_5xx_are_retryable(send: Any, base_url: str, status: int) -> None:
    with pytest.raises(StepExecutionError, match=f"HTTP {status} from POST") as info:
        await send(f"{base_url}/status/{status}", method="POST", body={})
    assert info.value.retryable is True


async def test_expect_status(send: Any, base_url: str) -> None:
    result = await send(f"{base_url}/status/404", expect_status=[404])
    assert (result.output, result.meta) == ("status 404 body", {"status": 404})
    with pytest.raises(StepExecutionError, match="HTTP 200"):
        await send(f"{base_url}/status/200", expect_status=[201])


async def test_connection_refused_is_retryable(send: Any) -> None:
    with pytest.raises(StepExecutionError, match="connection failed") as info:
        await send(f"http://127.0.0.1:{free_port()}/")
    assert info.value.retryable is True
    assert info.value.error_type == "connection"


async def test_body_is_capped_with_a_marker(
    executor: HttpExecutor, make_ctx: ContextFactory, base_url: str
) -> None:
    ctx = make_ctx(output_limit_bytes=1000)
    result = await executor.execute(HttpStep(id="s", url=f"{base_url}/big/5000000"), ctx)
    assert result.output == "y" * 1000 + "\n…[truncated: kept 1000 of 5000000 bytes]"
    with pytest.raises(StepExecutionError, match="larger than the output limit") as info:
        await executor.execute(HttpStep(id="s", url=f"{base_url}/big/5000", output="json"), ctx)
    assert info.value.retryable is False


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/x", "scheme must be http or https"),
        ("example.com/x", "scheme must be http or https"),
        ("http:///path", "no host"),
        ("http://[::1", "invalid URL"),
    ],
)
async def test_invalid_urls_are_permanent(send: Any, url: str, why: str) -> None:
    with pytest.raises(StepExecutionError, match="invalid URL") as info:
        await send(url)
    assert why in str(info.value)
    assert info.value.retryable is False


async def test_cancellation_propagates_and_the_client_stays_usable(
    send: Any, base_url: str
) -> None:
    task = asyncio.create_task(send(f"{base_url}/slow/2/cancel"))
    assert await asyncio.to_thread(ARRIVALS.wait, "/slow/2/cancel")  # the request is in flight
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await send(f"{base_url}/text")).output == "plain é"


async def test_timeout_from_the_runtime(send: Any, base_url: str) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await send(f"{base_url}/slow/2")


def test_one_executor_serves_successive_event_loops(base_url: str, ctx: StepContext) -> None:
    executor = HttpExecutor()
    step = HttpStep(id="s", url=f"{base_url}/echo")

    async def once() -> Any:
        try:
            return (await executor.execute(step, ctx)).output["method"]
        finally:
            await executor.aclose()

    assert asyncio.run(once()) == "GET"
    assert asyncio.run(once()) == "GET"


def test_the_client_closes_with_its_event_loop(base_url: str, ctx: StepContext) -> None:
    executor = HttpExecutor()
    step = HttpStep(id="s", url=f"{base_url}/echo")
    assert asyncio.run(executor.execute(step, ctx)).meta == {"status": 200}
    assert asyncio.run(executor.execute(step, ctx)).meta == {"status": 200}
    gc.collect()  # an unclosed socket from the first loop would warn here, failing the test
