"""The bearer tokens `podium token` creates, lists and revokes, and the server checks
(server/auth.py): kept apart from the routes so the command line reads them without loading
FastAPI.

Tokens live in a JSON file (default `.podium/tokens.json`, beside the default store), mode 0600,
each as the SHA-256 of a 256-bit random secret: the secret itself is printed once and never
stored. A file rather than the event store: tokens are the server's configuration, not run
history, so pruning, copying or sharing a store never moves credentials, and no backend needs a
table for them. The server re-reads the file when it changes, so a revoked token stops working
at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from podium.errors import UsageError

Scope = Literal["read", "write", "approve"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
TOKENS_ENV = "PODIUM_TOKENS"
DEFAULT_TOKENS = Path(".podium") / "tokens.json"
PREFIX = "pdm_"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored token: never the secret, only its SHA-256."""

    id: str
    name: str
    scopes: tuple[Scope, ...]
    sha256: str
    created_at: str

    def allows(self, scope: Scope) -> bool:
        return scope == "read" or scope in self.scopes


def default_tokens_path() -> Path:
    return Path(os.environ.get(TOKENS_ENV) or DEFAULT_TOKENS)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenBook:
    """The tokens file: read (and re-read when it changes) by the server, written by the CLI."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[float, int] | None = None
        self._records: list[TokenRecord] = []

    def records(self) -> list[TokenRecord]:
        stamp = self._file_stamp()
        if stamp != self._stamp:
            self._records, self._stamp = self._read(), stamp
        return list(self._records)

    def create(self, scopes: Iterable[str], name: str | None = None) -> tuple[str, TokenRecord]:
        """A new token: (its secret, to show once; its record, as stored)."""
        wanted = _scopes(scopes)
        secret = PREFIX + secrets.token_urlsafe(32)
        token_id = "tok_" + secrets.token_hex(4)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        record = TokenRecord(token_id, name or token_id, wanted, _digest(secret), created)
        self._write([*self.records(), record])
        return secret, record

    def revoke(self, which: str) -> TokenRecord:
        """Remove the token with this id (or, if unique, this name)."""
        records = self.records()
        found = [r for r in records if r.id == which] or [r for r in records if r.name == which]
        if len(found) != 1:
            how = "no token" if not found else f"{len(found)} tokens"
            raise UsageError(f"{how} with id or name {which!r}; `podium token list` shows them")
        self._write([r for r in records if r is not found[0]])
        return found[0]

    def lookup(self, secret: str) -> TokenRecord | None:
        digest = _digest(secret)
        match = None
        for record in self.records():  # compare every one, in constant time each
            if hmac.compare_digest(record.sha256, digest):
                match = record
        return match

    def _file_stamp(self) -> tuple[float, int] | None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        return (info.st_mtime, info.st_size)

    def _read(self) -> list[TokenRecord]:
        if not self.path.exists():
            return []
        if self.path.stat().st_mode & 0o077:
            raise UsageError(
                f"the tokens file {self.path} is readable by other users; "
                f"make it owner-only: chmod 600 {self.path}"
            )
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [_record(item) for item in data["tokens"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(
                f"the tokens file {self.path} is not one `podium token` wrote ({exc}); "
                "remove it and create the tokens again"
            ) from None

    def _write(self, records: list[TokenRecord]) -> None:
        """Atomically, owner-only from its first byte."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        document = {"tokens": [asdict(r) | {"scopes": list(r.scopes)} for r in records]}
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(document, file, indent=2)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        self._stamp = None


def _record(item: dict[str, Any]) -> TokenRecord:
    return TokenRecord(
        id=str(item["id"]),
        name=str(item["name"]),
        scopes=_scopes(item["scopes"]),
        sha256=str(item["sha256"]),
        created_at=str(item["created_at"]),
    )


def _scopes(given: Iterable[str]) -> tuple[Scope, ...]:
    words = list(dict.fromkeys(given))
    unknown = [w for w in words if w not in SCOPES]
    if unknown or not words:
        raise UsageError(
            f"scope {', '.join(unknown) or '(none)'} is not one of {', '.join(SCOPES)}; "
            "e.g. --scope read"
        )
    return tuple(s for s in SCOPES if s in words)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; anything else (0.0.0.0 too) reaches other machines."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
