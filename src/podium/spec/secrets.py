"""What a secret looks like: the key formats redaction recognises (one alternation, compiled once,
every alternative anchored so a scan is linear), the placeholder a `type: secret` input is
recorded as, and the check that refuses a workflow document holding a literal key."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from podium.errors import Problem

MARKER = "[redacted]"
MIN_LITERAL = 6  # shorter literal values are not redacted: they would shred ordinary text

_T = r"A-Za-z0-9_\-"  # the characters of a key token
# Every alternative opens with a literal (the regex engine then skips ahead to candidates) and a
# token only counts where no token character precedes it: each run of token characters is
# scanned once, so a scan is linear even on adversarial text.
_TOKENS = {  # name: (the literal it opens with, the rest)
    "anthropic": ("sk-ant-", r"[A-Za-z0-9_\-]{16,}"),
    "openai": ("sk-", r"(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),
    "github": ("gh", r"[posur]_[A-Za-z0-9]{20,}"),
    "github_pat": ("github_pat_", r"[A-Za-z0-9_]{20,}"),
    "gitlab": ("glpat-", r"[A-Za-z0-9_\-]{16,}"),
    "slack": ("xox", r"[abprs]-[A-Za-z0-9\-]{10,}"),
    "aws": ("AKIA", r"[0-9A-Z]{16}(?![0-9A-Z])"),
    "google": ("AIza", r"[0-9A-Za-z_\-]{35}"),
    "jwt": ("eyJ", r"[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]+"),
}


def _token(name: str, lead: str, rest: str) -> str:
    """`lead` + `rest` where no token character precedes `lead`."""
    quoted = re.escape(lead)
    return f"(?P<{name}>{quoted}(?<![{_T}]{quoted}){rest})"


def _param(name: str) -> str:
    """At the `=` of `name=` (any case) where no letter or digit precedes the name."""
    return f"(?<=(?i:{name})=)(?<![A-Za-z0-9](?i:{name})=)"


# a private key block: its BEGIN line and body (up to the next run of five dashes), END if seen
_PEM = (
    r"-----BEGIN[A-Z ]{0,40}PRIVATE KEY-----(?:[^-]|-(?!----))*"
    r"(?:-----END[A-Z ]{0,40}PRIVATE KEY-----)?"
)
_NAMES = ("client_secret", "access_token", "api_key", "apikey", "password", "secret", "token")
# the alternatives that keep a prefix (group `k<n>`) and redact what follows (group `v<n>`)
_KEEP = (
    r"(?P<k1>(?:uthorization|UTHORIZATION)\"?\s{0,8}[:=]\s{0,8}\"?"
    r"(?:[Bb]earer|BEARER|[Bb]asic|BASIC|[Tt]oken|TOKEN)\s{1,8})(?P<v1>[^\s\"',;]+)",
    r"(?P<k2>://[^\s/?#:@\"']{0,256}:)(?P<v2>[^\s/?#@\"']{1,256})(?=@)",
    f"(?P<k3>=(?:{'|'.join(map(_param, _NAMES))}))" r"(?P<v3>[^&\s\"'<>]+)",
)
_ALTERNATIVES = "|".join([*_KEEP, f"(?P<pem>{_PEM})", *(_token(n, *p) for n, p in _TOKENS.items())])
# what every alternative opens with: a lookahead of plain literals lets the engine skip ahead
_LEADS = (
    "uthorization",
    "UTHORIZATION",
    "://",
    "=",
    "-----BEGIN",
    *(p[0] for p in _TOKENS.values()),
)


# the same, lower-cased, for a quick look at long text (`str.find` is far faster than a regex)
_LOWER_LEADS = (
    "authorization",
    "://",
    "-----begin",
    "sk-",
    *(f"gh{c}_" for c in "posur"),
    "github_pat_",
    "glpat-",
    "xox",
    "akia",
    "aiza",
    "eyj",
    *(f"{n}=" for n in ("token", "secret", "password", "api_key", "apikey")),
)


def may_hold_key(text: str) -> bool:
    """False when `text` cannot hold a key format (True: the patterns must look)."""
    low = text.lower()
    return any(lead in low for lead in _LOWER_LEADS)


def pattern_source(literals: Iterable[str] = ()) -> str:
    """The alternation of the key formats, after `literals` (group `lit`) if any."""
    quoted = [re.escape(value) for value in literals]
    leads = "|".join([*quoted, *map(re.escape, _LEADS)])
    alternatives = f"(?P<lit>{'|'.join(quoted)})|{_ALTERNATIVES}" if quoted else _ALTERNATIVES
    return f"(?=(?:{leads}))(?:{alternatives})"


PATTERNS = re.compile(pattern_source())
KEEP_GROUPS = tuple((f"k{i}", f"v{i}") for i in range(1, len(_KEEP) + 1))

_PLACEHOLDER = re.compile(r"\[secret:([A-Za-z_][A-Za-z0-9_\-]*):([0-9a-f]{16})\]")
_TEMPLATED = ("{{", "${", "$", "[secret:", MARKER[:-1])


def placeholder(name: str, nonce: str) -> str:
    """What `run.created` records for secret input `name` (never the value, nor a hash of it);
    the nonce makes it unguessable, so text from outside cannot ask for the value."""
    return f"[secret:{name}:{nonce}]"


def placeholders(text: str) -> Iterator[re.Match[str]]:
    return _PLACEHOLDER.finditer(text)


def is_placeholder(value: object) -> bool:
    return isinstance(value, str) and _PLACEHOLDER.fullmatch(value) is not None


def default_env(name: str) -> str:
    """The variable a secret input is read from by default: its name in upper case."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name).upper()


def found_secret(text: str) -> str | None:
    """What kind of literal secret `text` holds (None: none). A value that is a template, a
    variable or a placeholder is not a literal secret."""
    for match in PATTERNS.finditer(text):
        kind = match.lastgroup or "secret"
        value = match.group(kind)
        if kind.startswith("k"):
            kind = f"v{kind[1:]}"
            value = match.group(kind)
        if value.startswith(_TEMPLATED) or (kind == "v2" and len(value) < MIN_LITERAL):
            continue  # a template, not a value; `host:port@` or a toy password in a url
        return _KINDS.get(kind, kind)
    return None


_KINDS = {
    "v1": "an Authorization header value",
    "v2": "a password in a URL (user:password@)",
    "v3": "a key or password in a query parameter",
    "pem": "a private key",
    **{name: f"{'an' if name[0] in 'aeiou' else 'a'} {name} key" for name in _TOKENS},
}


def secret_problems(document: Any, where: str = "") -> list[Problem]:
    """A Problem for each string of a workflow document (or inputs) holding a literal secret:
    recorded in `run.created`, it would be stored as written."""
    text = json.dumps(document, ensure_ascii=False, default=str)
    if not may_hold_key(text) or PATTERNS.search(text) is None:
        return []  # the common case: one scan of the whole document, no walk
    problems: list[Problem] = []
    for path, text in _strings(document, where):
        kind = found_secret(text)
        if kind is not None:
            problems.append(
                Problem(
                    path or "(document)",
                    f"holds {kind}, which would be stored with the run; pass it as an input "
                    "declared `type: secret`, or name an environment variable in a shell step's "
                    "`secrets:` (or `[secrets] env` in podium.toml) instead of writing it here",
                )
            )
    return problems


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, dict):
            stack += [(f"{where}.{k}" if where else str(k), v) for k, v in item.items()]
        elif isinstance(item, list | tuple):
            stack += [(f"{where}[{i}]", v) for i, v in enumerate(item)]


__all__ = [
    "MARKER",
    "MIN_LITERAL",
    "PATTERNS",
    "default_env",
    "found_secret",
    "is_placeholder",
    "may_hold_key",
    "pattern_source",
    "placeholder",
    "placeholders",
    "secret_problems",
]
