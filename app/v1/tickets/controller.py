"""/api/v1/tickets/{id}: seed 000's status change and seed 001's partial update, answering the whole ticket."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, patch, put
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from app.auth.principal import Principal
from app.auth.requirements import WRITE_SCOPE
from app.idempotency.http import IdempotencyKeyHeader, replayed_headers
from app.observability import current_request_id
from app.v1.errors import v1_error_responses
from app.v1.routes import v1_requires
from app.v1.tickets.dto import StatusChangeRequest, TicketUpdateRequest, V1Ticket
from app.v1.tickets.service import V1TicketService

_responses = {
    200: ResponseSpec(V1Ticket, description="The ticket after the change"),
    **v1_error_responses(400, 401, 403, 404, 409, 413, 422),
}


class V1TicketController(Controller):
    path = "/tickets"

    @patch(
        "/{ticket_id:str}/status",
        **v1_requires("write", WRITE_SCOPE, "change the ticket status"),
        operation_id="v1ChangeTicketStatus",
        summary="Change a ticket's status (seed 000)",
        responses=_responses,
    )
    async def change_status(
        self,
        request: Request[Principal, Any, Any],
        v1_tickets: NamedDependency[V1TicketService],
        ticket_id: FromPath[str],
        data: JSONBody[StatusChangeRequest],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[V1Ticket]:
        """Moves the ticket to `status`, one of the names of its type's workflow states, if the workflow allows the
        move from the ticket's current status; the whole ticket comes back."""
        ticket, replayed = await v1_tickets.change_status(
            request.user, ticket_id, data, current_request_id(), idempotency_key
        )
        return Response(ticket, headers=replayed_headers(replayed))

    @put(
        "/{ticket_id:str}",
        **v1_requires("write", WRITE_SCOPE, "update the ticket"),
        operation_id="v1UpdateTicket",
        summary="Update a ticket's category, title, description, attachments or notes (seed 001)",
        responses=_responses,
    )
    async def update(
        self,
        request: Request[Principal, Any, Any],
        v1_tickets: NamedDependency[V1TicketService],
        ticket_id: FromPath[str],
        data: JSONBody[TicketUpdateRequest],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[V1Ticket]:
        """Changes only the members sent; status, assignedTo and userId cannot be changed here. The whole ticket
        comes back."""
        ticket, replayed = await v1_tickets.update(request.user, ticket_id, data, current_request_id(), idempotency_key)
        return Response(ticket, headers=replayed_headers(replayed))
