"""The SSRF guard (SPEC F16) of http steps and fetching tools: every address a host name resolves
to is checked before a connection is made, and the connection is made to the address that was
checked.

The check lives in an httpcore network backend, at the one place a socket is opened: each new
connection (the first request, every redirect hop, every reconnect) resolves the host once,
refuses it if any address is loopback, private, link-local, CGNAT, multicast, reserved,
unspecified or a cloud metadata address (IPv4 embedded in IPv6 included) unless the run's
`policy.network.allow` allows it, and dials those very addresses, so a second DNS answer can never
be used (no rebinding). TLS still verifies and sends SNI for the name in the URL: httpcore starts
TLS with the origin's host name, not with the address dialed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

import httpcore
import httpx

from podium.errors import StepExecutionError
from podium.spec.network import Address, NetworkPolicy

METADATA = frozenset(
    ipaddress.ip_address(text) for text in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
_CREDENTIAL_WORDS = ("token", "secret", "key", "auth")


def refused_kind(address: Address) -> str | None:
    """What makes `address` one the guard refuses ("loopback", "private", ...), or None."""
    if address in METADATA:
        return "cloud metadata"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_v4(address)
        if embedded is not None:
            kind = refused_kind(embedded)
            return None if kind is None else f"{kind} (IPv4 {embedded} inside IPv6)"
    return _kind(address)


def _kind(address: Address) -> str | None:
    checks = (
        (address.is_unspecified or address in _THIS_NETWORK, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address in _CGNAT, "shared (CGNAT)"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved or not address.is_global, "reserved"),
    )
    return next((kind for hit, kind in checks if hit), None)


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, IPv4-compatible, 6to4, Teredo or NAT64 address."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or (int(address) >> 32 == 0 and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def literal_address(host: str) -> Address | None:
    """The address a host written as an IP means, in every spelling the C library accepts
    (`127.1`, `2130706433`, `0x7f.1`, `0177.0.0.1`, `[::ffff:127.0.0.1]`), or None for a name."""
    text = host.strip("[]")
    try:
        return ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        pass
    if not text or not all(ch in "0123456789abcdefxABCDEFX." for ch in text):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def _special_name(host: str) -> bool:
    """`localhost` and every name below it are loopback whatever a resolver says (RFC 6761)."""
    name = host.rstrip(".").casefold()
    return name == "localhost" or name.endswith(".localhost")


async def checked_addresses(host: str, port: int, network: NetworkPolicy) -> list[Address]:
    """The addresses to dial for `host`: all it resolves to, each checked; raises the guard's
    error if any is refused and not allowed."""
    by_name = network.allows_host(host)
    literal = literal_address(host)
    if literal is not None:
        addresses = [literal]
    elif _special_name(host) and not by_name:
        raise refusal(host, "localhost", "loopback")
    else:
        addresses = await _resolve(host, port)
    for address in addresses:
        kind = refused_kind(address)
        if kind is not None and not by_name and not network.allows_address(address):
            raise refusal(host, str(address), kind)
    return addresses


async def _resolve(host: str, port: int) -> list[Address]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    found = (ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
    addresses = list(dict.fromkeys(found))
    if not addresses:
        raise httpcore.ConnectError(f"cannot resolve {host}: no addresses")
    return addresses


def refusal(host: str, address: str, kind: str) -> StepExecutionError:
    return StepExecutionError(
        f"refused to connect to {host} ({address}): it is a {kind} address; Podium's SSRF guard "
        f'blocks private networks — allow it with [policy.network] allow = ["{host}"] in '
        "podium.toml or policy.network.allow in the workflow",
        retryable=False,
        error_type="network",
    )


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's default backend, dialing only addresses `checked_addresses` let through."""

    def __init__(self, network: NetworkPolicy) -> None:
        self.network = network
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await checked_addresses(host, port, self.network)
        failure: Exception | None = None
        for address in addresses:  # the checked addresses, in the resolver's order
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise refusal(path, path, "local socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(network: NetworkPolicy) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connection pool dials through `GuardedBackend`. No proxy from
    the environment (trust_env off): a proxy would reach the addresses the guard refuses."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    pool = transport._pool
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=pool._ssl_context,
        max_connections=pool._max_connections,
        max_keepalive_connections=pool._max_keepalive_connections,
        keepalive_expiry=pool._keepalive_expiry,
        http1=pool._http1,
        http2=pool._http2,
        network_backend=GuardedBackend(network),
    )
    return transport


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host.rstrip(".").casefold(), url.port


def drop_credentials(headers: httpx.Headers) -> None:
    """Remove every header that may carry a credential (for a redirect to another origin)."""
    for name in list(headers.keys()):
        folded = name.lower()
        if folded in _CREDENTIAL_HEADERS or any(word in folded for word in _CREDENTIAL_WORDS):
            del headers[name]
