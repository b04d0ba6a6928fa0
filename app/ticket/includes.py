"""What `GET /ticket/{objectId}?include=` embeds in the ticket: members owned by packages above this one (comments:
app.comment, attachments: app.attachment), which register how to produce them where the app is wired (app/asgi.py),
since this package may not import them.

`include` is a comma-separated list of INCLUDABLE names, parsed once; an unknown name is a 400 naming it. A GET
without `include` never comes here. Each member embeds at most MAX_EMBEDDED items.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from app.auth.principal import Principal
from app.errors import InputValidationFailure
from app.ticket.repository import TicketRow

# Every name `include` accepts, in the order their members follow the ticket's own.
INCLUDABLE = ("comments", "attachments")
INCLUDE_PATTERN = f"^({'|'.join(INCLUDABLE)})(,({'|'.join(INCLUDABLE)}))*$"
# Echoed names are cut so a client cannot make us reflect arbitrarily long input.
_MAX_ECHOED = 64
_MAX_ECHOED_NAMES = 10

# The member's JSON for a ticket the caller may see (TicketService.visible already said so).
IncludeProvider = Callable[[Principal, TicketRow], Awaitable[bytes]]
# At most this many items of a member are embedded; a ticket with more is answered with a 400 that names the route
# that lists them, rather than a response of unbounded size or a silently cut list.
MAX_EMBEDDED = 100


def too_many_to_embed(member: str, ticket: TicketRow) -> InputValidationFailure:
    return InputValidationFailure(
        "Too many to embed",
        {
            "include": f"the ticket has more than {MAX_EMBEDDED} {member}: read them with "
            f"GET .../ticket/{ticket.object_id}/{member}"
        },
    )


def parse_include(raw: str) -> tuple[str, ...]:
    """The names to embed, in INCLUDABLE order, each once."""
    names = set(raw.split(","))
    unknown = sorted(name for name in names if name not in INCLUDABLE)
    if unknown:
        echoed = ", ".join(repr(name[:_MAX_ECHOED]) for name in unknown[:_MAX_ECHOED_NAMES])
        raise InputValidationFailure(
            "Invalid query parameters",
            {"include": f"unknown {echoed}; a comma-separated list of: {', '.join(INCLUDABLE)}"},
        )
    return tuple(name for name in INCLUDABLE if name in names)


class TicketIncludes:
    """The providers of the INCLUDABLE members, registered at wiring."""

    def __init__(self) -> None:
        self._providers: dict[str, IncludeProvider] = {}

    def register(self, name: str, provider: IncludeProvider) -> None:
        if name not in INCLUDABLE:
            raise ValueError(f"{name!r} is not an includable member of a ticket")
        self._providers[name] = provider

    def check_complete(self) -> None:
        """Fail at start-up, not with a 500 on the first request that asks for a member nobody provides."""
        missing = [name for name in INCLUDABLE if name not in self._providers]
        if missing:
            raise RuntimeError(f"no provider registered for the ticket members {missing}")

    async def embed(self, principal: Principal, ticket: TicketRow, names: tuple[str, ...]) -> list[tuple[str, bytes]]:
        return [(name, await self._providers[name](principal, ticket)) for name in names]
