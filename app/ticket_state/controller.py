"""/api/v2/ticketing/ticket-state: readers list and show states; administrators create, change and delete them."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from app.auth.principal import Principal
from app.auth.requirements import ADMIN_SCOPE, READ_SCOPE, requires
from app.errors import error_responses
from app.idempotency.http import IDEMPOTENCY_KEY_PARAMETER, IdempotencyKeyHeader, replayed_headers
from app.ticket_state.dto import StateIn, StateList, StateOut, StateUpdate
from app.ticket_state.service import TicketStateService

# Customers read them too: a customer creating a ticket needs its type's fields, and a ticket names its state.
_read = requires("read", READ_SCOPE, "read ticket states", customers=True)
_admin = requires("admin", ADMIN_SCOPE, "administer ticket states", documented=(IDEMPOTENCY_KEY_PARAMETER,))


class TicketStateController(Controller):
    path = "/ticket-state"
    tags = ("ticket states",)

    @get(
        **_read, operation_id="listTicketStates", summary="List ticket states", responses=error_responses(400, 401, 404)
    )
    async def list_states(
        self, request: Request[Principal, Any, Any], ticket_states: NamedDependency[TicketStateService]
    ) -> StateList:
        """The tenant's ticket states, active and inactive."""
        return StateList(data=await ticket_states.list_states(request.user))

    @get(
        "/{state_id:str}",
        **_read,
        operation_id="showTicketState",
        summary="Show a ticket state",
        responses=error_responses(400, 401, 404),
    )
    async def show_state(
        self,
        request: Request[Principal, Any, Any],
        ticket_states: NamedDependency[TicketStateService],
        state_id: FromPath[str],
    ) -> StateOut:
        """One ticket state."""
        return await ticket_states.get(request.user, state_id)

    @post(
        **_admin,
        operation_id="createTicketState",
        summary="Create a ticket state",
        responses=error_responses(400, 401, 404, 413, 422),
    )
    async def create_state(
        self,
        request: Request[Principal, Any, Any],
        ticket_states: NamedDependency[TicketStateService],
        data: JSONBody[StateIn],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[StateOut]:
        """Making a state `default_create` or `default_follow_up` moves that flag to it from the current holder."""
        body, replayed = await ticket_states.create(request.user, data, idempotency_key)
        return Response(body, status_code=201, headers=replayed_headers(replayed))

    @put(
        "/{state_id:str}",
        **_admin,
        operation_id="updateTicketState",
        summary="Change a ticket state",
        responses=error_responses(400, 401, 404, 413, 422),
    )
    async def update_state(
        self,
        request: Request[Principal, Any, Any],
        ticket_states: NamedDependency[TicketStateService],
        state_id: FromPath[str],
        data: JSONBody[StateUpdate],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[StateOut]:
        """Changes the members sent (seed 003: `{"note": "..."}` alone is a valid change); the others keep their
        values, and `null` clears `next_state_id` or `note`. The tenant's default states cannot lose their flag or
        be deactivated: make another state the default instead."""
        body, replayed = await ticket_states.update(request.user, state_id, data, idempotency_key)
        return Response(body, headers=replayed_headers(replayed))

    @delete(
        "/{state_id:str}",
        **_admin,
        status_code=204,
        operation_id="deleteTicketState",
        summary="Delete a ticket state",
        responses={
            204: ResponseSpec(None, description="Deleted (or, with Idempotent-Replayed: true, deleted before)"),
            **error_responses(400, 401, 404, 409, 422),
        },
    )
    async def delete_state(
        self,
        request: Request[Principal, Any, Any],
        ticket_states: NamedDependency[TicketStateService],
        state_id: FromPath[str],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[None]:
        """Refused with 409 "Can't delete, object has references." while tickets or states refer to it; set
        `active: false` instead."""
        _, replayed = await ticket_states.delete(request.user, state_id, idempotency_key)
        return Response(None, status_code=204, headers=replayed_headers(replayed))
