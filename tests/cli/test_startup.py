"""Every command starts a Python process: what `podium.cli.app` imports is paid by each of them.
The server's FastAPI and uvicorn (a third of a second) load only for `podium serve`."""

from __future__ import annotations

import subprocess
import sys


def test_the_command_line_does_not_load_the_server() -> None:
    probe = (
        "import sys, podium.cli.app; "
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'sse_starlette') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr
