"""The network policy of the SSRF guard (SPEC F16): the hosts, addresses and networks that http
steps and fetching tools may reach although they are loopback, private, link-local or metadata
addresses. Pure.

Written in the project configuration (`[policy.network] allow = [...]`) and in a workflow
(`policy: {network: {allow: [...]}}`); a run's effective allow-list is the union of the two.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class NetworkPolicy(BaseModel):
    """`allow`: host names (`api.internal`), `*.suffix` wildcards (any name below the suffix),
    IP addresses and CIDR networks (`10.0.0.0/8`, `fd00::/8`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, ignored_types=(cached_property,))

    allow: list[str] = Field(default_factory=list)

    @field_validator("allow")
    @classmethod
    def _entries(cls, value: list[str]) -> list[str]:
        for entry in value:
            _parse(entry)
        return list(dict.fromkeys(entry.strip() for entry in value))

    def allows_host(self, host: str) -> bool:
        """Whether `host` (a name, as written in the URL) is allowed by name or wildcard."""
        name = host.strip("[]").rstrip(".").casefold()
        names, suffixes, _ = self._parsed
        return name in names or any(name.endswith(suffix) for suffix in suffixes)

    def allows_address(self, address: Address) -> bool:
        """Whether `address` lies in an allowed address or network."""
        return any(address.version == net.version and address in net for net in self._parsed[2])

    def record(self) -> dict[str, object]:
        return {"allow": list(self.allow)}

    @cached_property
    def _parsed(self) -> tuple[frozenset[str], tuple[str, ...], tuple[Network, ...]]:
        names: set[str] = set()
        suffixes: list[str] = []
        networks: list[Network] = []
        for entry in self.allow:
            parsed = _parse(entry)
            if isinstance(parsed, Network):
                networks.append(parsed)
            elif parsed.startswith("*."):
                suffixes.append(parsed[1:])
            else:
                names.add(parsed)
        return frozenset(names), tuple(suffixes), tuple(networks)


def union(project: NetworkPolicy, workflow: NetworkPolicy) -> NetworkPolicy:
    """Both allow-lists: an explicit allow in the workflow is the workflow author's call."""
    return NetworkPolicy(allow=[*project.allow, *workflow.allow])


def _parse(entry: str) -> Network | str:
    """An entry as a network (an address is a /32 or /128) or a lower-case name (`*.` kept)."""
    text = entry.strip()
    try:
        return ipaddress.ip_network(text.strip("[]"), strict=False)
    except ValueError:
        pass
    name = text.rstrip(".").casefold()
    labels = (name[2:] if name.startswith("*.") else name).split(".")
    if not name or len(name) > 253 or not all(_label(label) for label in labels):
        raise ValueError(
            f"network allow entry {entry!r} is not a host name, *.suffix wildcard, IP address "
            "or CIDR network; write e.g. 'api.internal', '*.corp.example', '10.0.0.5' or "
            "'10.0.0.0/8'"
        )
    return name


def _label(label: str) -> bool:
    return 0 < len(label) <= 63 and all(ch.isalnum() or ch in "-_" for ch in label)
