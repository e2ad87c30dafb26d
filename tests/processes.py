"""What the process table says, for tests that check no process outlived what should end it."""

from __future__ import annotations

from pathlib import Path


def survivors(marker: str) -> list[int]:
    """Live (not zombie) processes whose argv holds a `marker-*` token (a heartbeat's $0)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(arg.startswith(f"{marker}-".encode()) for arg in argv):
            found.append(int(entry.name))
    return found
