"""Where a webhook may be sent: never into the service's own network (SSRF).

A URL is checked when a subscription is saved and again on every connection: the host name is resolved here, every
address it resolves to must be public (not private, loopback, link-local, where cloud metadata services answer,
shared, multicast or reserved), and the connection goes to the address that was checked, so a DNS answer that
changes in between (rebinding) cannot redirect it. TLS still verifies the certificate against the host name.

WEBHOOK_ALLOW_LOOPBACK lets subscriptions reach receivers on this machine's loopback interface, over plain http too:
`make run` turns it on so a newcomer can try webhooks against a local receiver; otherwise it is off.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

RESOLVE_TIMEOUT_SECONDS = 5.0
MAX_URL_LENGTH = 2048

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(OSError):
    """The host resolves to an address webhooks may not reach; nothing was sent."""


def address_problem(address: Address, *, allow_loopback: bool) -> str | None:
    """Why webhooks may not go to `address`, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None if allow_loopback else f"{address} is a loopback address"
    if address.is_link_local:
        return f"{address} is a link-local address (where cloud metadata services answer)"
    if address.is_private:
        return f"{address} is a private address"
    if address.is_multicast or address.is_reserved or address.is_unspecified or not address.is_global:
        return f"{address} is not a public address"
    return None


async def resolve(host: str, port: int) -> list[Address]:
    """Every address `host` resolves to (an address literal: itself). OSError when it does not resolve."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
        answers = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(str(answer[4][0]).split("%", 1)[0]) for answer in answers))


async def url_problem(url: str, *, allow_loopback: bool) -> str | None:
    """Why a subscription may not use `url`, or None: https (plain http only to loopback, and only with
    WEBHOOK_ALLOW_LOOPBACK), a host, no credentials, and every address the host resolves to allowed."""
    if len(url) > MAX_URL_LENGTH:
        return f"at most {MAX_URL_LENGTH} characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("https", "http"):
        return "must be an https URL"
    if parts.scheme == "http" and not allow_loopback:
        return "must be an https URL (plain http is allowed only to a loopback receiver, with WEBHOOK_ALLOW_LOOPBACK)"
    if not parts.hostname:
        return "must name a host"
    if parts.username is not None or parts.password is not None:
        return "must not contain credentials"
    if parts.fragment:
        return "must not have a fragment"
    if any(ord(character) < 33 or ord(character) == 127 for character in url):
        return "must not contain spaces or control characters"
    try:
        addresses = await resolve(parts.hostname, port or (443 if parts.scheme == "https" else 80))
    except (OSError, TimeoutError, UnicodeError):
        return f"the host {parts.hostname} does not resolve"
    for address in addresses:
        problem = address_problem(address, allow_loopback=allow_loopback)
        if problem is not None:
            return f"refused: {_named(parts.hostname, problem)}"
        if parts.scheme == "http" and not address.is_loopback:
            return "must be an https URL (plain http is allowed only to a loopback receiver)"
    return None


def _named(host: str, problem: str) -> str:
    """The problem, naming the host name that led to the address (an address literal is named once)."""
    return problem if problem.startswith(host.strip("[]")) else f"{host} resolves to {problem}"


class _GuardedResolver(AbstractResolver):
    """Resolves and checks a host for aiohttp's connector, which then connects to the checked addresses only (never
    resolving them again)."""

    def __init__(self, *, allow_loopback: bool, loopback_only: bool) -> None:
        self._allow_loopback = allow_loopback
        self._loopback_only = loopback_only

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            addresses = await resolve(host, port)
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise OSError(f"{host} does not resolve: {exc}") from None
        self.check(host, addresses)
        return [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    def check(self, host: str, addresses: list[Address]) -> None:
        for address in addresses:
            problem = address_problem(address, allow_loopback=self._allow_loopback)
            if problem is None and self._loopback_only and not address.is_loopback:
                problem = f"{address} is not a loopback address (plain http goes to loopback receivers only)"
            if problem is not None:
                raise AddressRefused(f"refused: {_named(host, problem)}")

    async def close(self) -> None:
        pass


class SendFailed(Exception):
    """Nothing, or no complete answer, came back; the message says why (stored as the attempt's error)."""


class ConnectError(SendFailed):
    """No connection: the address was refused here, the name does not resolve, or the receiver is unreachable."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    # The first bytes of the body (at most what was asked for).
    excerpt: bytes


class GuardedClient:
    """POSTs to webhook receivers through aiohttp (a pool of kept-alive connections), to checked addresses only:
    host names are resolved and checked by the connector's resolver, address literals here (aiohttp connects to
    those without asking a resolver). No redirects are followed, no proxy or netrc from the environment is used, and
    TLS verifies the certificate against the host name."""

    def __init__(
        self,
        *,
        allow_loopback: bool,
        loopback_only: bool = False,
        max_connections: int = 100,
        timeout_seconds: float = 10.0,
        connect_timeout_seconds: float = 5.0,
    ) -> None:
        self._resolver = _GuardedResolver(allow_loopback=allow_loopback, loopback_only=loopback_only)
        self._max_connections = max_connections
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds, connect=connect_timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Made on first use: an aiohttp session belongs to the event loop that runs it.
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=self._resolver, use_dns_cache=False, limit=self._max_connections, keepalive_timeout=30.0
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, trust_env=False, auto_decompress=False
            )
        return self._session

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, excerpt_bytes: int) -> Answer:
        """The receiver's status, headers and the first `excerpt_bytes` of its body. Raises ConnectError when no
        connection was made (nothing was sent), SendFailed for any other failure, TimeoutError past the timeout."""
        host = urlsplit(url).hostname or ""
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            try:
                self._resolver.check(host, [literal])
            except AddressRefused as exc:
                raise ConnectError(str(exc)) from None
        try:
            async with self._open().post(url, data=body, headers=headers, allow_redirects=False) as response:
                excerpt = bytearray()
                while len(excerpt) < excerpt_bytes:
                    chunk = await response.content.read(excerpt_bytes - len(excerpt))
                    if not chunk:
                        break
                    excerpt += chunk
                return Answer(response.status, response.headers, bytes(excerpt))
        except TimeoutError:
            raise
        except aiohttp.ClientConnectorError as exc:
            cause = exc.os_error
            raise ConnectError(str(cause) if isinstance(cause, AddressRefused) else str(exc)) from None
        except aiohttp.ClientError as exc:
            raise SendFailed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
