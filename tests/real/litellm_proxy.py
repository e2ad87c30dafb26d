"""LiteLLM's proxy for the real tier: `.venv-litellm/bin/litellm --config FILE` as a subprocess
on 127.0.0.1 and a free port, serving mock models only. `make test-real` creates .venv-litellm
from requirements/real-litellm.txt (litellm[proxy] cannot share .venv: it pins rich<14 and the
dev lock has rich 15), so Podium's code, in .venv, reaches it over HTTP like any other
OpenAI-compatible server.

What is real and what is mocked: the proxy is LiteLLM's own server (auth by a fixed master key,
routing by model name, its request checks, its OpenAI-shaped replies and SSE streams, its error
mapping); the models behind it are LiteLLM's mocks (`litellm_params.mock_response`), so no
provider is called and the replies are fixed:
- `plain`, `json`, `planner`, `researcher`, `writer`: a fixed text (`json` and `planner` a fixed
  JSON document). LiteLLM streams a mock in 3-character chunks and reports usage (its own count).
- `rate-limited`: `mock_response: litellm.RateLimitError`, which LiteLLM turns into HTTP 429.
- `overloaded`: `mock_response: "Exception: mock_streaming_error"`, LiteLLM's mock of an error
  raised mid-stream (status 529, "overloaded"). The proxy reads a stream's first chunk before it
  answers, and this mock fails before its first chunk, so the client gets HTTP 529 and a JSON
  error, not a stream broken off halfway; streamed or not, it is a 5xx.
- `tool-user`: a mock cannot tell one turn from the next, so a proxy hook (`HOOK`, loaded by the
  proxy through `litellm_settings.callbacks`, LiteLLM's plug-in point for its own pre-call
  hooks) chooses the mock for each request: while the conversation has no `tool` message and
  tools are offered, a reply whose only content is a `read_file` tool call (finish_reason
  `tool_calls`); once the tool's result is in the conversation, the text `The notes say: ` and
  that result, so the answer shows that Podium sent the result back.
The same hook appends every chat request it sees (model, stream, messages, tools offered,
response_format) to a JSON-lines file, which the tests read to check what Podium sent.

No database, no UI, no internet: LITELLM_LOCAL_MODEL_COST_MAP=True keeps LiteLLM from fetching
its price table at start (the proxy's telemetry is opt-in and no destination is set), no
`database_url` is configured, and the proxy's environment has no provider key.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-litellm"
LITELLM = VENV / "bin" / "litellm"
START_SECONDS = 120.0
MASTER_KEY = "sk-podium-real-tier"  # a fixed key of the proxy's own, not a provider's

ANSWER = "Paris is the capital of France."
COLOUR_JSON = '{"colour": "blue"}'
PLAN: dict[str, Any] = {
    "summary": "Research the topic, then write it up.",
    "steps": [
        {"id": "research", "agent": "researcher", "task": "List two facts about Paris."},
        {
            "id": "write",
            "agent": "writer",
            "task": "Write one sentence from the research.",
            "needs": ["research"],
        },
    ],
}
RESEARCH = "Fact 1: Paris is the capital of France. Fact 2: the Seine runs through it."
DRAFT = "Paris, on the Seine, is the capital of France."
NOTES = "milk, eggs, bread"
NOTES_FILE = "notes.txt"

MOCKS: dict[str, str] = {
    "plain": ANSWER,
    "json": COLOUR_JSON,
    "planner": json.dumps(PLAN),
    "researcher": RESEARCH,
    "writer": DRAFT,
    "rate-limited": "litellm.RateLimitError",
    "overloaded": "Exception: mock_streaming_error",
    "tool-user": "(the hook chooses this model's reply)",
}

HOOK = f'''"""Written by tests/real/litellm_proxy.py: the tool-user turns and the request log."""

import json
import os

from litellm.integrations.custom_logger import CustomLogger
from litellm.types.utils import Choices, Message, ModelResponse, Usage

TOOL_CALL = {{
    "id": "call_notes_1",
    "type": "function",
    "function": {{"name": "read_file", "arguments": json.dumps({{"path": {NOTES_FILE!r}}})}},
}}


def _seen(data):
    messages = []
    for m in data.get("messages") or []:
        messages.append({{k: m.get(k) for k in ("role", "content", "tool_calls", "tool_call_id")}})
    tools = [t.get("function", {{}}).get("name") for t in data.get("tools") or []]
    return {{
        "model": data.get("model"),
        "stream": bool(data.get("stream")),
        "stream_options": data.get("stream_options"),
        "messages": messages,
        "tools": tools,
        "response_format": data.get("response_format"),
    }}


class PodiumMocks(CustomLogger):
    async def async_pre_call_hook(self, user_api_key_dict, cache, data, call_type):
        with open(os.environ["PODIUM_LITELLM_REQUESTS"], "a", encoding="utf-8") as log:
            log.write(json.dumps(_seen(data), default=str) + "\\n")
        if data.get("model") != "tool-user":
            return data
        results = [m for m in data.get("messages") or [] if m.get("role") == "tool"]
        if results:
            data["mock_response"] = "The notes say: " + str(results[-1].get("content"))
        elif data.get("tools"):
            message = Message(role="assistant", content=None, tool_calls=[TOOL_CALL])
            choice = Choices(index=0, finish_reason="tool_calls", message=message)
            usage = Usage(prompt_tokens=40, completion_tokens=12, total_tokens=52)
            data["mock_response"] = ModelResponse(model="tool-user", choices=[choice], usage=usage)
        else:
            data["mock_response"] = "no tools were offered"
        return data


podium_mocks = PodiumMocks()
'''


@dataclass(frozen=True)
class LiteLLMProxy:
    """A running proxy: its `/v1` base URL, its master key, its log and its request log."""

    name: str
    base_url: str
    key: str
    log: Path
    request_log: Path

    def requests(self, model: str | None = None) -> list[dict[str, Any]]:
        """The chat requests the proxy has received (oldest first), or only `model`'s."""
        if not self.request_log.exists():
            return []
        lines = self.request_log.read_text(encoding="utf-8").splitlines()
        seen = [json.loads(line) for line in lines if line.strip()]
        return [r for r in seen if model is None or r["model"] == model]

    def forget(self) -> None:
        """Clear the request log (each test reads only its own requests)."""
        self.request_log.write_text("", encoding="utf-8")


def config_yaml() -> str:
    """The proxy's config (JSON is YAML): the mock models, the hook, the master key, no
    retries inside the proxy."""
    models = [
        {"model_name": name, "litellm_params": {"model": f"openai/{name}", "mock_response": reply}}
        for name, reply in MOCKS.items()
    ]
    config = {
        "model_list": models,
        "litellm_settings": {"callbacks": "podium_mocks.podium_mocks"},
        "general_settings": {"master_key": MASTER_KEY},
        # The router retries a failed call twice by default; off, so Podium's policy decides.
        "router_settings": {"num_retries": 0},
    }
    return json.dumps(config, indent=2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _environment(request_log: Path) -> dict[str, str]:
    """A small environment: no provider keys, no proxies, nothing that reaches out."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # the bundled price table, not GitHub's
        LITELLM_LOG="WARNING",
        NO_PROXY="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
        PODIUM_LITELLM_REQUESTS=str(request_log),
    )
    return env


def _wait_until_serving(proc: subprocess.Popen[bytes], proxy: LiteLLMProxy) -> None:
    headers = {"Authorization": f"Bearer {proxy.key}"}
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(httpx.HTTPError):
            reply = httpx.get(f"{proxy.base_url}/models", headers=headers, timeout=2.0)
            if reply.status_code == 200:
                return
        time.sleep(0.25)
    tail = proxy.log.read_text(errors="replace")[-3000:]
    state = f"exited {proc.returncode}" if proc.poll() is not None else "not serving"
    after = f"after {START_SECONDS:g} s"
    pytest.fail(f"LiteLLM's proxy at {proxy.base_url} is {state} {after}; its log:\n{tail}")


@contextlib.contextmanager
def running_proxy(folder: Path) -> Iterator[LiteLLMProxy]:
    """Start the proxy with its config and hook in `folder`; stop it on exit."""
    if not LITELLM.exists():
        pytest.fail(
            f"LiteLLM's proxy is not installed ({LITELLM} is missing): run `make test-real`, "
            "which creates .venv-litellm from requirements/real-litellm.txt"
        )
    config = folder / "litellm.yaml"
    config.write_text(config_yaml(), encoding="utf-8")
    (folder / "podium_mocks.py").write_text(HOOK, encoding="utf-8")
    port = _free_port()
    proxy = LiteLLMProxy(
        name="litellm",
        base_url=f"http://127.0.0.1:{port}/v1",
        key=MASTER_KEY,
        log=folder / "proxy.log",
        request_log=folder / "requests.jsonl",
    )
    argv = [str(LITELLM), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    with proxy.log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=folder,
            env=_environment(proxy.request_log),
        )
    try:
        _wait_until_serving(proc, proxy)
        yield proxy
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
