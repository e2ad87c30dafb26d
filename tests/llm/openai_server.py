"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions wire protocol.

Each test scripts the replies (a queue of `Reply`, or a `handler` function) and reads back what the
client sent (`requests`: path, headers, JSON body). Replies are JSON bodies, SSE streams
(`data: {...}` … `data: [DONE]`, or cut off before it), OpenAI-style error bodies, or a hang until
the server stops. The handlers at the end behave like real servers do: llama.cpp's 500 on a null
`content`, a server without `response_format`.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

MODEL = "gpt-4o-mini"
# OpenAI's path, and Azure's (`/openai/deployments/<name>/chat/completions?api-version=…`).
_CHAT_PATH = re.compile(r"^(/v1|/openai/deployments/[^/]+)/chat/completions$")


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a JSON body, SSE events (`events`), or a hang."""

    status: int = 200
    json: Any = None
    events: tuple[Any, ...] = ()
    hang: bool = False
    done: bool = True  # end the stream with `data: [DONE]` (False: the connection just closes)


Handler = Callable[[Received], Reply]


@dataclass
class OpenAIServer:
    """The server's script and record. `url` is the base URL to give the SDK (ends in /v1)."""

    replies: deque[Reply] = field(default_factory=deque)
    handler: Handler | None = None
    requests: list[Received] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def next_reply(self, received: Received) -> Reply:
        self.requests.append(received)
        if self.handler is not None:
            return self.handler(received)
        if self.replies:
            return self.replies.popleft()
        return error(500, "the test scripted no reply for this request")

    @property
    def last(self) -> Received:
        return self.requests[-1]


class _RequestHandler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        headers = {k.lower(): v for k, v in self.headers.items()}
        received = Received(path=self.path, headers=headers, body=body)
        if not _CHAT_PATH.match(urlparse(self.path).path):
            self.send_json(404, error(404, f"no route {self.path}").json)
            return
        self.answer(self.server.script.next_reply(received))

    def answer(self, reply: Reply) -> None:
        if reply.hang:
            self.server.script.stopping.wait(30)
        elif reply.events:
            self.send_events(reply.events, done=reply.done)
        else:
            self.send_json(reply.status, reply.json)

    def send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_events(self, events: tuple[Any, ...], *, done: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for event in events:
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
        if done:
            self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    script: OpenAIServer


def serve() -> Iterator[OpenAIServer]:
    """Run a server on an ephemeral port in a thread for the duration of the generator."""
    httpd = _HTTPServer(("127.0.0.1", 0), _RequestHandler)
    httpd.script = OpenAIServer(url=f"http://127.0.0.1:{httpd.server_address[1]}/v1")
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield httpd.script
    finally:
        httpd.script.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


# -- canned bodies ------------------------------------------------------------------------------


def completion(
    content: str | None = "",
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    usage: tuple[int, int] | None = (11, 7),
    finish_reason: str = "stop",
) -> Reply:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = _usage(*usage)
    return Reply(json=body)


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    return {**_chunk_head(), "choices": [choice]}


def usage_chunk(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {**_chunk_head(), "choices": [], "usage": _usage(prompt_tokens, completion_tokens)}


def text_stream(pieces: list[str], usage: tuple[int, int] | None = (5, 3)) -> Reply:
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in pieces]
    events.append(chunk({}, finish_reason="stop"))
    if usage is not None:
        events.append(usage_chunk(*usage))
    return Reply(events=tuple(events))


def error(status: int, message: str, kind: str = "invalid_request_error") -> Reply:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return Reply(status=status, json=body)


def _chunk_head() -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": MODEL,
    }


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


# -- servers as they behave in the wild ---------------------------------------------------------


def empty_stream() -> Reply:
    """A stream with no choices at all (only a usage chunk), as some proxies send."""
    return Reply(events=(usage_chunk(5, 0),))


def cut_off_stream(pieces: list[str]) -> Reply:
    """Text, then the connection closes: no finish reason, no `[DONE]`."""
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in pieces]
    return Reply(events=tuple(events), done=False)


def length_stream(pieces: list[str]) -> Reply:
    """A reply stopped by the token limit."""
    events = [chunk({"content": piece}) for piece in pieces]
    events.append(chunk({}, finish_reason="length"))
    return Reply(events=tuple(events))


def null_content_refused(then: Handler) -> Handler:
    """llama.cpp's server: a message whose `content` is null is a 500; otherwise `then`."""

    def handle(received: Received) -> Reply:
        if any(m.get("content", "") is None for m in received.body.get("messages", [])):
            return error(500, "Failed to parse messages: content must be a string", "server_error")
        return then(received)

    return handle


def without_response_format(
    then: Handler, *, kinds: tuple[str, ...] = ("json_schema",), status: int = 400
) -> Handler:
    """A server that refuses these `response_format` types (with a 400, or as llama-cpp-python
    does, a 500 carrying its request validation error); otherwise `then`."""

    def handle(received: Received) -> Reply:
        kind = (received.body.get("response_format") or {}).get("type")
        if kind in kinds and status == 500:
            detail = "body.response_format.type: Input should be 'text' or 'json_object'"
            return error(500, detail, kind="server_error")
        if kind in kinds:
            return error(400, f"response_format type '{kind}' is not supported")
        return then(received)

    return handle


def replies(*queue: Reply) -> Handler:
    """A handler that answers from a queue (for wrapping in the handlers above)."""
    pending = deque(queue)
    return lambda received: pending.popleft() if pending else error(500, "no reply left")
