"""The names models see for MCP tools: `<server>__<tool>` when that is already a valid provider tool
name (`^[a-zA-Z0-9_-]{1,64}$`, OpenAI's rule), else a sanitized, shortened prefix plus a short hash
of the server and tool names. A pure function of the two names: stable across restarts."""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 64  # OpenAI's limit on a tool name
_VALID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HASH_CHARS = 8


def exposed_name(server: str, tool: str) -> str:
    """The name models see for `tool` of `server`. A name that had to change (characters
    providers refuse, or too long) ends in `_<8 hex>` from a hash of both names, so two tools
    whose plain names collide once cleaned up or cut stay apart."""
    plain = f"{server}__{tool}"
    if _VALID.match(plain):
        return plain
    digest = hashlib.sha256(f"{server}\0{tool}".encode()).hexdigest()[:_HASH_CHARS]
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", plain)[: MAX_NAME - _HASH_CHARS - 1]
    return f"{cleaned}_{digest}"
