"""/api/v1/ticket_states: seed 003's list, show, create, update and delete, with integer ids."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK

from app.auth.principal import Principal
from app.auth.requirements import ADMIN_SCOPE, READ_SCOPE
from app.idempotency.http import IdempotencyKeyHeader, replayed_headers
from app.v1.errors import V1_STATE_EXCEPTION_HANDLERS, v1_state_error_responses
from app.v1.routes import v1_requires
from app.v1.ticket_states.dto import Deleted, V1State, V1StateIn, V1StateUpdate
from app.v1.ticket_states.service import ADMINISTRATORS, READERS, V1TicketStateService, not_found

_read = v1_requires(None, READ_SCOPE, "read ticket states", seed_permissions=READERS)
_administer = v1_requires(None, ADMIN_SCOPE, "administer ticket states", seed_permissions=ADMINISTRATORS)


def _number(state_id: str) -> int:
    """A path id that is not a positive integer names no state (404, as an unknown number)."""
    if not state_id.isascii() or not state_id.isdigit() or len(state_id) > 18:
        raise not_found(state_id)
    return int(state_id)


class V1TicketStateController(Controller):
    path = "/ticket_states"
    exception_handlers = V1_STATE_EXCEPTION_HANDLERS

    @get(
        "/",
        **_read,
        operation_id="v1ListTicketStates",
        summary="List ticket states (seed 003)",
        responses=v1_state_error_responses(400, 401, 403, 404),
    )
    async def list_states(
        self, request: Request[Principal, Any, Any], v1_states: NamedDependency[V1TicketStateService]
    ) -> list[V1State]:
        """Every state of the tenant, by integer id. Permission admin.object, ticket.agent or ticket.customer."""
        return await v1_states.list_states(request.user)

    @get(
        "/{ticket_state_id:str}",
        **_read,
        operation_id="v1ShowTicketState",
        summary="Show a ticket state (seed 003)",
        responses=v1_state_error_responses(400, 401, 403, 404),
    )
    async def show(
        self,
        request: Request[Principal, Any, Any],
        v1_states: NamedDependency[V1TicketStateService],
        ticket_state_id: FromPath[str],
    ) -> V1State:
        """One state. Permission admin.object, ticket.agent or ticket.customer."""
        return await v1_states.show(request.user, _number(ticket_state_id))

    @post(
        "/",
        **_administer,
        operation_id="v1CreateTicketState",
        summary="Create a ticket state (seed 003)",
        responses=v1_state_error_responses(400, 401, 403, 404, 413, 422),
    )
    async def create(
        self,
        request: Request[Principal, Any, Any],
        v1_states: NamedDependency[V1TicketStateService],
        data: JSONBody[V1StateIn],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[V1State]:
        """A new state (201). Permission admin.object."""
        created, replayed = await v1_states.create(request.user, data, idempotency_key)
        return Response(created, status_code=201, headers=replayed_headers(replayed))

    @put(
        "/{ticket_state_id:str}",
        **_administer,
        operation_id="v1UpdateTicketState",
        summary="Update a ticket state (seed 003)",
        responses=v1_state_error_responses(400, 401, 403, 404, 413, 422),
    )
    async def update(
        self,
        request: Request[Principal, Any, Any],
        v1_states: NamedDependency[V1TicketStateService],
        ticket_state_id: FromPath[str],
        data: JSONBody[V1StateUpdate],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[V1State]:
        """The members sent replace the state's ({"note": ...} alone is a change). Permission admin.object."""
        updated, replayed = await v1_states.update(request.user, _number(ticket_state_id), data, idempotency_key)
        return Response(updated, headers=replayed_headers(replayed))

    @delete(
        "/{ticket_state_id:str}",
        **_administer,
        status_code=HTTP_200_OK,
        operation_id="v1DeleteTicketState",
        summary="Delete a ticket state (seed 003)",
        responses={
            200: ResponseSpec(Deleted, description="Deleted: {}"),
            **v1_state_error_responses(400, 401, 403, 404, 422),
        },
    )
    async def delete(
        self,
        request: Request[Principal, Any, Any],
        v1_states: NamedDependency[V1TicketStateService],
        ticket_state_id: FromPath[str],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[Deleted]:
        """Permanent; refused ("Can't delete, object has references.") while a ticket or another state refers to
        it. Permission admin.object."""
        _, replayed = await v1_states.delete(request.user, _number(ticket_state_id), idempotency_key)
        return Response(Deleted(), headers=replayed_headers(replayed))
