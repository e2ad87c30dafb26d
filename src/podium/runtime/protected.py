"""Podium's own files that steps must not touch (SPEC F16): the store file and its SQLite
companions, the project configuration files and the agents catalog. File steps and tools refuse
them (steps/confined.py); the shell sandbox mounts them read-only."""

from __future__ import annotations

from pathlib import Path

from podium.config import MCP_FILE, PROJECT_FILE
from podium.runtime.services import AgentServices
from podium.store.base import EventStore

_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def protected_paths(store: EventStore, services: AgentServices) -> tuple[Path, ...]:
    """Absolute paths of the store file (a file store), the project configuration and the agents
    folder, in a stable order without repeats."""
    paths: list[Path] = []
    store_file = getattr(store, "path", None)
    if isinstance(store_file, Path):
        base = store_file.absolute()
        paths += [base, *(base.with_name(base.name + tail) for tail in _SQLITE_COMPANIONS)]
    config = services.config
    if config.path is not None:
        paths.append(config.path.absolute())
    # a step creating one would loosen the policy of every later run
    paths += [(config.root / name).absolute() for name in (PROJECT_FILE, MCP_FILE)]
    paths.append(config.agents_dir or (services.project_dir / "agents").absolute())
    return tuple(dict.fromkeys(paths))
