"""A real local server speaking the Anthropic Messages wire protocol, for the adapter's tests.

`POST /v1/messages` answers with the next scripted reply: a JSON `Message`, an SSE stream when the
body says `"stream": true` (text and tool input split into fragments), or an Anthropic-style error
body. Every request's path, headers and JSON body are recorded.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FRAGMENT = 4  # characters per streamed text or JSON fragment


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass(frozen=True)
class Scripted:
    """One reply. `status` other than 200 sends an error body; `stream_error` sends an `error`
    event after the first content block of a stream; `delay_seconds` stalls before answering."""

    blocks: tuple[dict[str, Any], ...] = ()
    stop_reason: str = "end_turn"
    input_tokens: int = 10
    output_tokens: int = 5
    status: int = 200
    error_type: str = ""
    error_message: str = ""
    stream_error: tuple[str, str] | None = None
    delay_seconds: float = 0.0


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(id_: str, name: str, input_: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": id_, "name": name, "input": input_}


@dataclass
class AnthropicServer:
    replies: deque[Scripted] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    _httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, *replies: Scripted) -> None:
        self.replies.extend(replies)

    def start(self) -> None:
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        serve = self._httpd.serve_forever
        threading.Thread(target=serve, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def stop(self) -> None:
        self.released.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    server_state: AnthropicServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        headers = {k.lower(): v for k, v in self.headers.items()}
        state = self.server_state
        state.received.append(Received(self.path, headers, body))
        reply = state.replies.popleft() if state.replies else Scripted(blocks=(text("ok"),))
        if reply.delay_seconds and state.released.wait(reply.delay_seconds):
            return
        if self.path != "/v1/messages":
            self._json(404, _error_body("not_found_error", f"no route {self.path}"))
        elif reply.status != 200:
            self._json(reply.status, _error_body(reply.error_type, reply.error_message))
        elif body.get("stream"):
            self._stream(reply, body["model"])
        else:
            self._json(200, _message(reply, body["model"]))

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", "req_test")
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, reply: Scripted, model: str) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.end_headers()
        for name, data in _events(reply, model):
            self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()


def _error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _message(reply: Scripted, model: str, *, streaming: bool = False) -> dict[str, Any]:
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [] if streaming else list(reply.blocks),
        "stop_reason": None if streaming else reply.stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": reply.input_tokens,
            "output_tokens": 1 if streaming else reply.output_tokens,
        },
    }


def _events(reply: Scripted, model: str) -> list[tuple[str, dict[str, Any]]]:
    events = [
        (
            "message_start",
            {"type": "message_start", "message": _message(reply, model, streaming=True)},
        )
    ]
    events.append(("ping", {"type": "ping"}))
    for index, block in enumerate(reply.blocks):
        events += _block_events(index, block)
        if reply.stream_error is not None:
            return [*events, ("error", _error_body(*reply.stream_error))]
    delta = {"stop_reason": reply.stop_reason, "stop_sequence": None}
    usage = {"output_tokens": reply.output_tokens}
    events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _streamed(block: dict[str, Any]) -> tuple[dict[str, Any], str, str, str]:
    """(the block as content_block_start shows it, the whole payload, delta type, delta key)."""
    if block["type"] == "text":
        return {"type": "text", "text": ""}, block["text"], "text_delta", "text"
    whole = block.get("raw_json") or json.dumps(block["input"])  # raw_json: send it as is
    start = {k: v for k, v in block.items() if k != "raw_json"}
    return {**start, "input": {}}, whole, "input_json_delta", "partial_json"


def _block_events(index: int, block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    start, whole, kind, key = _streamed(block)
    events = [
        (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": start},
        )
    ]
    for at in range(0, len(whole), FRAGMENT):
        delta = {"type": kind, key: whole[at : at + FRAGMENT]}
        events.append(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        )
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events
