"""/api/v2/ticketing/ticket-type: readers list and show types; administrators create, version and archive them."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from app.auth.principal import Principal
from app.auth.requirements import ADMIN_SCOPE, READ_SCOPE, requires
from app.errors import error_responses
from app.idempotency.http import IDEMPOTENCY_KEY_PARAMETER, IdempotencyKeyHeader, replayed_headers
from app.ticket_type.dto import TicketTypeDefinition, TicketTypeList, TicketTypeOut
from app.ticket_type.service import TicketTypeService

# Customers read them too: a customer creating a ticket needs its type's fields, and a ticket names its state.
_read = requires("read", READ_SCOPE, "read ticket types", customers=True)
_admin = requires("admin", ADMIN_SCOPE, "administer ticket types", documented=(IDEMPOTENCY_KEY_PARAMETER,))


class TicketTypeController(Controller):
    path = "/ticket-type"
    tags = ("ticket types",)

    @get(**_read, operation_id="listTicketTypes", summary="List ticket types", responses=error_responses(400, 401, 404))
    async def list_types(
        self,
        request: Request[Principal, Any, Any],
        ticket_types: NamedDependency[TicketTypeService],
        include_archived: Annotated[bool, QueryParameter(name="include_archived")] = False,
    ) -> TicketTypeList:
        """The tenant's ticket types with their fields (field `id`s are the keys of a ticket's `data`)."""
        return TicketTypeList(data=await ticket_types.list_types(request.user, include_archived))

    @get(
        "/{type_id:str}",
        **_read,
        operation_id="showTicketType",
        summary="Show a ticket type",
        responses=error_responses(400, 401, 404),
    )
    async def show_type(
        self,
        request: Request[Principal, Any, Any],
        ticket_types: NamedDependency[TicketTypeService],
        type_id: FromPath[str],
    ) -> TicketTypeOut:
        """One ticket type, current version."""
        return await ticket_types.get(request.user, type_id)

    @get(
        "/{type_id:str}/schema",
        **_read,
        operation_id="showTicketDataSchema",
        summary="JSON Schema of a ticket's data",
        responses=error_responses(400, 401, 404),
    )
    async def data_schema(
        self,
        request: Request[Principal, Any, Any],
        ticket_types: NamedDependency[TicketTypeService],
        type_id: FromPath[str],
    ) -> dict[str, Any]:
        """One JSON Schema (2020-12) for a whole ticket `data` document of this type, to validate before sending."""
        compiled = await ticket_types.compiled(request.user, type_id)
        return compiled.data_schema()

    @post(
        **_admin,
        operation_id="createTicketType",
        summary="Create a ticket type",
        responses=error_responses(400, 401, 404, 413, 422),
    )
    async def create_type(
        self,
        request: Request[Principal, Any, Any],
        ticket_types: NamedDependency[TicketTypeService],
        data: JSONBody[TicketTypeDefinition],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[TicketTypeOut]:
        """Administrators only (admin role and tickets:admin scope). The definition is validated in full."""
        body, replayed = await ticket_types.create(request.user, data, idempotency_key)
        return Response(body, status_code=201, headers=replayed_headers(replayed))

    @put(
        "/{type_id:str}",
        **_admin,
        operation_id="replaceTicketType",
        summary="Change a ticket type (a new version)",
        responses=error_responses(400, 401, 404, 413, 422),
    )
    async def replace_type(
        self,
        request: Request[Principal, Any, Any],
        ticket_types: NamedDependency[TicketTypeService],
        type_id: FromPath[str],
        data: JSONBody[TicketTypeDefinition],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[TicketTypeOut]:
        """Stores a new version. The prefix is fixed; a field UUID keeps its key forever; ticket data is untouched."""
        body, replayed = await ticket_types.replace(request.user, type_id, data, idempotency_key)
        return Response(body, headers=replayed_headers(replayed))

    @delete(
        "/{type_id:str}",
        **_admin,
        status_code=200,
        operation_id="archiveTicketType",
        summary="Archive a ticket type",
        responses=error_responses(400, 401, 404, 422),
    )
    async def archive_type(
        self,
        request: Request[Principal, Any, Any],
        ticket_types: NamedDependency[TicketTypeService],
        type_id: FromPath[str],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[TicketTypeOut]:
        """Archives: no new tickets of the type; existing tickets and the prefix stay. Never a hard delete."""
        body, replayed = await ticket_types.archive(request.user, type_id, idempotency_key)
        return Response(body, headers=replayed_headers(replayed))
