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
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

RESOLVE_TIMEOUT_SECONDS = 5.0
MAX_URL_LENGTH = 2048

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(httpcore.ConnectError):
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


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks the host itself, then connects to a checked address (never resolving it again)."""

    def __init__(self, *, allow_loopback: bool, loopback_only: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_loopback = allow_loopback
        self._loopback_only = loopback_only

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve(host, port)
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from None
        for address in addresses:
            problem = address_problem(address, allow_loopback=self._allow_loopback)
            if problem is None and self._loopback_only and not address.is_loopback:
                problem = f"{address} is not a loopback address (plain http goes to loopback receivers only)"
            if problem is not None:
                raise AddressRefused(f"refused: {_named(host, problem)}")
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are not sent to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (connection pooling, keep-alive, TLS), on the guarded network backend. httpx offers no
    parameter for the backend, so the pool it built is replaced by one built the same way with ours."""

    def __init__(self, *, allow_loopback: bool, loopback_only: bool = False, max_connections: int = 100) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
            network_backend=_GuardedBackend(allow_loopback=allow_loopback, loopback_only=loopback_only),
        )
