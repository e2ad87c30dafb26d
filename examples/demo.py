"""`make demo`: serve the example issues API on 127.0.0.1 and run the quickstart against it; then
plan and run a goal with agents — an OFFLINE demo: the model is scripted, the shell and file
steps are real."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> int:
    handler = functools.partial(_Quiet, directory=str(HERE / "site"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"http://127.0.0.1:{server.server_address[1]}"
    podium = Path(sys.executable).with_name("podium")
    argv = [str(podium), "run", str(HERE / "quickstart.yaml"), "--input", f"api={api}"]
    try:
        code = subprocess.call([*argv, *sys.argv[1:]], cwd=HERE.parent)
    finally:
        server.shutdown()
    report = HERE / "out" / "report.md"  # the workspace is the workflow file's folder
    if code == 0 and report.exists():
        print(f"\n{report.relative_to(HERE.parent)}:\n{report.read_text()}")
    if code != 0:
        return code
    print("\n--- planning demo (offline: scripted model, real shell and file steps) ---\n")
    script = HERE / "scripts" / "research.yaml"
    plan = [str(podium), "run", str(HERE / "research.yaml"), "--agents", str(HERE)]
    plan += ["--model", f"scripted:{script}", *sys.argv[1:]]
    code = subprocess.call(plan, cwd=HERE.parent)
    briefing = HERE / "out" / "briefing.md"
    if code == 0 and briefing.exists():
        print(f"\n{briefing.relative_to(HERE.parent)}:\n{briefing.read_text()}")
    if code == 0:
        serve = " ".join([os.path.relpath(podium, HERE.parent), "serve", *sys.argv[1:]])
        print(f"\nSee both runs in the web UI: {serve}, then open http://127.0.0.1:8765/")
    return code


if __name__ == "__main__":
    sys.exit(main())
