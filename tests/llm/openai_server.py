"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions wire protocol.

Each test scripts the replies (a queue of `Reply`, or a `handler` function) and reads back what the
client sent (`requests`: path, headers, JSON body). Replies are JSON bodies, SSE streams
(`data: {...}` … `data: [DONE]`), OpenAI-style error bodies, or a hang until the server stops.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "gpt-4o-mini"


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
        if self.path != "/v1/chat/completions":
            self.send_json(404, error(404, f"no route {self.path}").json)
            return
        self.answer(self.server.script.next_reply(received))

    def answer(self, reply: Reply) -> None:
        if reply.hang:
            self.server.script.stopping.wait(30)
        elif reply.events:
            self.send_events(reply.events)
        else:
            self.send_json(reply.status, reply.json)

    def send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_events(self, events: tuple[Any, ...]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for event in events:
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
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
