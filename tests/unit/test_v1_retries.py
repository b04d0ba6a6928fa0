"""The v1 writes that redo a lost compare-and-swap (seeds 001 and 004): each lost race is redone from a fresh read, up
to MAX_ATTEMPTS times, and then the caller gets 409 in its surface's envelope, never a loop without end. Losing eight
races in a row cannot be arranged through a server on purpose, so here every write loses; the retrying code is the
real one, the services under it are stand-ins that count the calls."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest

from app.auth.principal import Principal
from app.ticket.errors import EtagMismatch
from app.v1.errors import V1Error
from app.v1.platform import service as platform_module
from app.v1.platform.dto import PlatformUpdateTicketRequest
from app.v1.platform.service import PlatformService
from app.v1.tickets import service as tickets_module
from app.v1.tickets.dto import StatusChangeRequest, TicketUpdateRequest
from app.v1.tickets.service import V1TicketService

PRINCIPAL = Principal(
    subject="agent-1",
    tenant_id=uuid.uuid4(),
    realm="main",
    roles=frozenset({"agent"}),
    scopes=frozenset(),
    permissions=frozenset(),
    service_account=False,
    support_request=False,
)
TICKET_ID = str(uuid.uuid4())


class Keys:
    """Idempotency without a key: the write runs once."""

    def claim(self, *_: object) -> None:
        return None

    async def once(self, _principal: Principal, _claim: None, write: Callable[[], Awaitable[Any]], _: object) -> Any:
        return await write(), False


class Transactions:
    def __init__(self) -> None:
        self.opened = 0

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        self.opened += 1
        yield


class LosingTickets:
    """A TicketService whose every compare-and-swap finds the etag changed."""

    def __init__(self) -> None:
        self.writes = 0

    async def visible_by_id(self, _principal: Principal, _ticket_id: uuid.UUID) -> Any:
        return SimpleNamespace(object_id="REQ-0001", etag=uuid.uuid4(), type_id=TYPE_ID)

    async def update(self, *_: object) -> Any:
        self.writes += 1
        raise EtagMismatch

    change_status = update


TYPE_ID = uuid.uuid4()


class Mapping:
    async def tickets(self, _tenant: uuid.UUID) -> Any:
        return SimpleNamespace(ticket_type=SimpleNamespace(id=TYPE_ID))

    async def platform(self, _tenant: uuid.UUID) -> Any:
        return SimpleNamespace(statuses={"open": ["new"]})


def _conflict(raised: pytest.ExceptionInfo[V1Error]) -> tuple[int, str]:
    return raised.value.status, raised.value.code


async def test_a_seed_001_update_that_loses_every_race_is_a_409_after_max_attempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tickets_module, "_changes", lambda _mapping, _sent: {"title": "Printer jammed"})
    tickets = LosingTickets()
    service = V1TicketService(cast(Any, tickets), cast(Any, Mapping()), cast(Any, Keys()))
    with pytest.raises(V1Error) as raised:
        await service.update(PRINCIPAL, TICKET_ID, TicketUpdateRequest(title="Printer jammed"), "req-1", None)
    assert _conflict(raised) == (409, "CONFLICT")
    assert tickets.writes == tickets_module.MAX_ATTEMPTS == 8


async def test_a_seed_001_status_change_that_loses_every_race_is_a_409_after_max_attempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tickets_module, "_checked_status", lambda _mapping, status: status)
    tickets = LosingTickets()
    service = V1TicketService(cast(Any, tickets), cast(Any, Mapping()), cast(Any, Keys()))
    with pytest.raises(V1Error) as raised:
        await service.change_status(PRINCIPAL, TICKET_ID, StatusChangeRequest(status="in_progress"), "req-1", None)
    assert _conflict(raised) == (409, "CONFLICT")
    assert tickets.writes == 8


async def test_a_seed_004_patch_that_loses_every_race_is_a_409_after_max_attempts_each_in_its_own_transaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = Transactions()
    service = PlatformService(cast(Any, db), *(cast(Any, None),) * 5, cast(Any, Mapping()), cast(Any, Keys()))
    applied: list[str] = []

    async def losing_apply(_principal: Principal, _mapping: object, ticket_id: str, *_: object) -> None:
        applied.append(ticket_id)
        raise EtagMismatch

    monkeypatch.setattr(service, "_apply", losing_apply)
    with pytest.raises(V1Error) as raised:
        await service.update(PRINCIPAL, TICKET_ID, PlatformUpdateTicketRequest(status="open"), "req-1", None)
    assert _conflict(raised) == (409, "conflict")
    assert applied == [TICKET_ID] * platform_module.MAX_ATTEMPTS
    assert db.opened == 8  # each attempt all or nothing: a lost race rolls back what the attempt had written
