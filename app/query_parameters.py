"""Refuses query parameters a route does not know, naming them, instead of ignoring them.

A client that sends `?status=open` to a route without that filter would otherwise get every ticket back and believe
the filter worked. A route's known names are the query parameters Litestar itself expects for it (declared in any
form, by their public name, its dependencies' included), read once per handler from the application's routes; a
route may also accept every name under a prefix (`data.` for field filters) by listing the prefix in its `opt` under
QUERY_PREFIXES.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Receive, Scope, Send

from app.errors import InputValidationFailure

QUERY_PREFIXES = "query_prefixes"
MAX_REMEMBERED = 10_000
MAX_REMEMBERED_LENGTH = 256
# Echoed names are cut, so a client cannot make us reflect arbitrarily long input.
_MAX_ECHOED_NAME = 64


class UnknownQueryParametersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Per route handler: its query parameter names and accepted prefixes.
        self._known: dict[int, tuple[frozenset[str], tuple[str, ...]]] = {}
        # (handler, query string) pairs found acceptable: clients repeat the same query string (PATCH's
        # ?type=...&module=...), so most requests skip parsing it.
        self._accepted: set[tuple[int, bytes]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # OPTIONS answers with the route's methods whatever it is asked: a CORS preflight carries the real request's
        # query string, which is not the OPTIONS handler's to judge.
        if scope["type"] == ScopeType.HTTP and scope["query_string"] and scope.get("method") != "OPTIONS":
            self._check(scope["litestar_app"], scope["route_handler"], scope["query_string"])
        await self.app(scope, receive, send)

    def _check(self, app: Litestar, handler: Any, query_string: bytes) -> None:
        if (id(handler), query_string) in self._accepted:
            return
        names, prefixes = self._known_for(app, handler)
        unknown = [
            name
            for name, _ in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
            if name not in names and not name.startswith(prefixes)
        ]
        if unknown:
            accepted = ", ".join([*sorted(names), *(f"{prefix}<name>" for prefix in prefixes)]) or "none"
            raise InputValidationFailure(
                "Invalid query parameters",
                {
                    name[:_MAX_ECHOED_NAME]: f"unknown query parameter; this route accepts: {accepted}"
                    for name in unknown
                },
            )
        if len(query_string) <= MAX_REMEMBERED_LENGTH:  # a long query string is checked each time, never kept
            if len(self._accepted) > MAX_REMEMBERED:
                self._accepted.clear()
            self._accepted.add((id(handler), query_string))

    def _known_for(self, app: Litestar, handler: Any) -> tuple[frozenset[str], tuple[str, ...]]:
        known = self._known.get(id(handler))
        if known is None:
            self._known.update(_query_names_by_handler(app))
            known = self._known.get(id(handler), (frozenset(), ()))
        return known


def _query_names_by_handler(app: Litestar) -> dict[int, tuple[frozenset[str], tuple[str, ...]]]:
    """Every HTTP handler's query parameter names, as the parameter model Litestar built for its route expects them
    (so a parameter declared with a bare Parameter(), a plain default or in a dependency is known too)."""
    known: dict[int, tuple[frozenset[str], tuple[str, ...]]] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler, parameters in route.route_handler_map.values():
                names = frozenset(parameter.field_alias for parameter in parameters.expected_query_params)
                known[id(handler)] = (names, tuple(handler.opt.get(QUERY_PREFIXES, ())))
    return known
