"""/api/v2/ticketing/ticket: create, read (now or as of a past version), list, the etag compare-and-swap update
(seed 002), the status change and the history."""

from __future__ import annotations

import datetime
import hashlib
import re
import uuid
from typing import Annotated, Any, Literal, cast
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.enums import ParamType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Parameter, Schema
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.types import ASGIApp

from app.auth.principal import Principal
from app.auth.requirements import READ_SCOPE, WRITE_SCOPE, requires
from app.errors import InputValidationFailure, error_responses
from app.fast_response import JsonResponse
from app.observability import current_request_id
from app.query_parameters import QUERY_PREFIXES
from app.ticket.dto import (
    ChangeStatusRequest,
    CreateTicketRequest,
    CreateTicketResponse,
    HistoryPage,
    Pagination,
    TicketOut,
    TicketPage,
    UpdateTicketRequest,
    UpdateTicketResponse,
)
from app.ticket.service import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    TIME_FORMAT,
    TicketQuery,
    TicketService,
    WrittenTicket,
    is_storable_time,
    last_page,
)

_encoder = msgspec.json.Encoder()
CATALOG_TYPES = ("template", "agent", "user")
MODULE_PATTERN = "^[a-z][a-z0-9_-]{0,63}$"
# fullmatch without the anchors: Python's "$" also matches before a trailing newline.
_MODULE = re.compile(MODULE_PATTERN.removeprefix("^").removesuffix("$"))
_FIELD_FILTER = re.compile(r"data\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
MAX_FIELD_FILTERS = 10
MAX_PER_PAGE = 100

# The contract's `type` and `module` (seed 002: both required). The handlers take them as optional so that
# check_catalog reports every problem with them in the contract's INPUT_VALIDATION_FAILURE shape; the document says
# what check_catalog enforces.
CATALOG_PARAMETERS = (
    Parameter(
        name="type",
        param_in=ParamType.QUERY,
        required=True,
        schema=Schema(type=OpenAPIType.STRING, enum=list(CATALOG_TYPES)),
        description="Catalog type",
    ),
    Parameter(
        name="module",
        param_in=ParamType.QUERY,
        required=True,
        schema=Schema(type=OpenAPIType.STRING, pattern=MODULE_PATTERN),
        description="The module context, e.g. ticketing",
    ),
)
# What TicketService accepts as a key (printable ASCII), without the blanks at either end that HTTP strips from
# every header value.
_KEY_EDGE = "!-~"
IDEMPOTENCY_KEY_PARAMETER = Parameter(
    name="Idempotency-Key",
    param_in=ParamType.HEADER,
    required=False,
    schema=Schema(
        type=OpenAPIType.STRING,
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        pattern=f"^[{_KEY_EDGE}]([ {_KEY_EDGE}]*[{_KEY_EDGE}])?$",
    ),
    description="Retrying with the same key (and the same request) within IDEMPOTENCY_KEY_TTL_SECONDS returns the "
    "first answer, with Idempotent-Replayed: true, instead of writing again; the key with another request is 422",
)

# What GET ticket?include= may embed, each under its own member.
INCLUDES = ("attachments",)
MAX_NAMED_UNKNOWN = 10
_INCLUDE_NAME = "|".join(INCLUDES)
INCLUDE_PARAMETER = Parameter(
    name="include",
    param_in=ParamType.QUERY,
    required=False,
    schema=Schema(type=OpenAPIType.STRING, pattern=f"^({_INCLUDE_NAME})(,({_INCLUDE_NAME}))*$"),
    description="Comma-separated: what to embed in the ticket (attachments: its files, oldest first). Not with "
    "asOf or asOfEtag. The response's ETag is then its own validator, not the ticket's etag.",
)

_read = requires("read", READ_SCOPE, "read tickets")
_show = requires("read", READ_SCOPE, "read tickets", documented=(INCLUDE_PARAMETER,))
# The list also takes field filters, data.<field-uuid>=<value>.
_list = {**_read, "opt": {**_read["opt"], QUERY_PREFIXES: ("data.",)}}
_create = requires("write", WRITE_SCOPE, "create a ticket", documented=(*CATALOG_PARAMETERS, IDEMPOTENCY_KEY_PARAMETER))
_update = requires(
    "write", WRITE_SCOPE, "update the ticket", documented=(*CATALOG_PARAMETERS, IDEMPOTENCY_KEY_PARAMETER)
)
_change_status = requires("write", WRITE_SCOPE, "change the ticket status", documented=(IDEMPOTENCY_KEY_PARAMETER,))
# A "+" in an unencoded query string arrives as a space: "...T10:00:00 01:00" meant "+01:00".
_SPACED_OFFSET = re.compile(r" (\d{2}:?\d{2})$")

CatalogQuery = Annotated[str | None, QueryParameter(name="type")]
ModuleQuery = Annotated[str | None, QueryParameter(name="module")]
IdempotencyKeyHeader = Annotated[str | None, HeaderParameter(name="Idempotency-Key")]
_REPLAYED = {"Idempotent-Replayed": "true"}


def check_catalog(catalog_type: str | None, module: str | None) -> None:
    """The contract's required `type` and `module` query parameters."""
    reason: dict[str, str] = {}
    if catalog_type not in CATALOG_TYPES:
        reason["type"] = "required; one of template, agent, user"
    if module is None or not _MODULE.fullmatch(module):
        reason["module"] = "required; a module name such as ticketing"
    if reason:
        raise InputValidationFailure("Invalid query parameters", reason)


def _etag_header(etag: str) -> str:
    return f'"{etag}"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/").strip('"') for tag in if_none_match.split(",")}
    return "*" in candidates or etag in candidates


class TicketController(Controller):
    path = "/ticket"
    tags = ("tickets",)

    @post(
        **_create,
        operation_id="createTicket",
        summary="Create a ticket",
        status_code=201,
        responses=error_responses(400, 401, 404, 413, 422),
    )
    async def create_ticket(
        self,
        request: Request[Principal, Any, Any],
        tickets: NamedDependency[TicketService],
        data: JSONBody[CreateTicketRequest],
        catalog_type: CatalogQuery = None,
        module: ModuleQuery = None,
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[CreateTicketResponse]:
        """`data` maps field UUIDs to values; defaults are applied, required fields enforced, every value validated."""
        check_catalog(catalog_type, module)
        created, replayed = await tickets.create(request.user, data, current_request_id(), idempotency_key)
        body = CreateTicketResponse(
            success=True,
            message="ticket created successfully",
            status=201,
            objectId=created.object_id,
            id=created.id,
            etag=str(created.etag),
            state_id=created.state_id,
            state_name=created.state_name,
            state_type=created.state_type,
        )
        headers = {"ETag": _etag_header(body.etag), **(_REPLAYED if replayed else {})}
        return Response(body, status_code=201, headers=headers)

    @get(**_list, operation_id="listTickets", summary="List tickets", responses=error_responses(400, 401, 404))
    async def list_tickets(
        self,
        request: Request[Principal, Any, Any],
        tickets: NamedDependency[TicketService],
        page: Annotated[int, QueryParameter(ge=1, le=1_000_000)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=MAX_PER_PAGE)] = 20,
        ticket_type_id: FromQuery[uuid.UUID | None] = None,
        sort: FromQuery[Literal["created_at", "updated_at"]] = "created_at",
        order: FromQuery[Literal["asc", "desc"]] = "desc",
    ) -> TicketPage:
        """Paginated (`page`, `per_page` ≤ 100), filtered by `ticket_type_id` and by field values
        (`data.<field-uuid>=<value>`, value read as JSON when it parses, else as a string), sorted by
        `created_at` or `updated_at`, `asc` or `desc`, ties broken by id so the order is stable."""
        if ticket_type_id is None and "ticket_type_id" in request.query_params:
            # Litestar's lenient conversion reads "null" (or nothing) as no filter: a filter that silently does
            # nothing would look as if it worked.
            raise InputValidationFailure("The request failed validation", {"ticket_type_id": "Invalid UUID"})
        query = TicketQuery(
            page=page,
            per_page=per_page,
            type_id=ticket_type_id,
            field_values=_field_filters(request),
            sort=sort,
            order=order,
        )
        total, rows = await tickets.page(request.user, query)
        return TicketPage(data=rows, pagination=_pagination(request, total, page, per_page))

    @get(
        "/{object_id:str}",
        **_show,
        operation_id="showTicket",
        summary="Show a ticket",
        responses={
            200: ResponseSpec(TicketOut, description="The ticket; its etag also in the ETag header"),
            304: ResponseSpec(None, description="If-None-Match named the current etag"),
            **error_responses(400, 401, 404),
        },
    )
    async def show_ticket(
        self,
        request: Request[Principal, Any, Any],
        tickets: NamedDependency[TicketService],
        object_id: FromPath[str],
        if_none_match: Annotated[str | None, HeaderParameter(name="If-None-Match")] = None,
        as_of: Annotated[
            str | None,
            QueryParameter(
                name="asOf",
                format=OpenAPIFormat.DATE_TIME,
                description="ISO 8601 timestamp with a time zone: the ticket as it was at that time",
            ),
        ] = None,
        as_of_etag: Annotated[
            str | None, QueryParameter(name="asOfEtag", description="The ticket as it was when it had this etag")
        ] = None,
        include: FromQuery[str | None] = None,
    ) -> ASGIApp:
        """By display ID (e.g. REQ-0509); the internal UUID is not an address. The etag is in the body and the
        ETag header; If-None-Match with the current etag answers 304. With `asOf` or `asOfEtag`, the document a
        GET returned then, rebuilt from the ticket's history (404 when the ticket did not exist yet). With
        `include=attachments`, the ticket's files too."""
        principal = request.user
        if include is not None:
            return await _show_including(tickets, principal, object_id, include, as_of, as_of_etag, if_none_match)
        if as_of is None and as_of_etag is None:
            ticket = await tickets.get(principal, object_id)
        else:
            ticket = await tickets.as_of(principal, object_id, _as_of_time(as_of, as_of_etag), as_of_etag)
        etag_header = ((b"etag", _etag_header(ticket.etag).encode()),)
        if _matches(if_none_match, ticket.etag):
            return JsonResponse(b"", status=304, headers=etag_header)
        return JsonResponse(_encoder.encode(ticket), headers=etag_header)

    @patch(
        "/{object_id:str}/update",
        **_update,
        operation_id="updateTicket",
        summary="Update ticket fields (etag compare-and-swap)",
        responses=error_responses(400, 401, 404, 413, 422),
    )
    async def update_ticket(
        self,
        request: Request[Principal, Any, Any],
        tickets: NamedDependency[TicketService],
        object_id: FromPath[str],
        data: JSONBody[UpdateTicketRequest],
        catalog_type: CatalogQuery = None,
        module: ModuleQuery = None,
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> UpdateTicketResponse:
        """Shallow-merges `ticketUpdate` into the ticket's data if `etag` is still current; "", null or [] clears
        a field. A stale etag is 400 ETAG_MISMATCH; success returns the new etag."""
        check_catalog(catalog_type, module)
        written, replayed = await tickets.update(
            request.user, object_id, data.etag, data.ticketUpdate, current_request_id(), idempotency_key
        )
        body = _written("ticket updated successfully", written)
        return _replayed(body) if replayed else body

    @patch(
        "/{object_id:str}/status",
        **_change_status,
        operation_id="changeTicketStatus",
        summary="Change the ticket's state (etag compare-and-swap, checked against the type's workflow)",
        responses=error_responses(400, 401, 404, 413, 422),
    )
    async def change_status(
        self,
        request: Request[Principal, Any, Any],
        tickets: NamedDependency[TicketService],
        object_id: FromPath[str],
        data: JSONBody[ChangeStatusRequest],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> UpdateTicketResponse:
        """Moves the ticket to `state` (a state id or name) if `etag` is still current: a stale etag is 400
        ETAG_MISMATCH, a move the type's workflow does not allow is 400 TRANSITION_NOT_ALLOWED listing the states
        allowed instead, and a state's guard that the data does not satisfy is 400 INPUT_VALIDATION_FAILURE naming
        the fields. `pendingUntil` is required for pending states (a pending-close ticket moves to its state's next
        state then) and refused for others. `note` is kept in the history. Success returns the new etag."""
        written, replayed = await tickets.change_status(
            request.user, object_id, data, current_request_id(), idempotency_key
        )
        body = _written("ticket status changed successfully", written)
        return _replayed(body) if replayed else body

    @get(
        "/{object_id:str}/history",
        **_read,
        operation_id="listTicketHistory",
        summary="A ticket's history, oldest first",
        responses=error_responses(400, 401, 404),
    )
    async def ticket_history(
        self,
        request: Request[Principal, Any, Any],
        tickets: NamedDependency[TicketService],
        object_id: FromPath[str],
        page: Annotated[int, QueryParameter(ge=1, le=1_000_000)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=MAX_PER_PAGE)] = 20,
    ) -> HistoryPage:
        """Every change, oldest first: the creation with each initial value, each update with each changed
        field's old and new value, each state change (with its note and pending time), and for each the actor,
        the time, the request id, the support flag and the etag it produced."""
        total, entries = await tickets.history(request.user, object_id, page, per_page)
        return HistoryPage(data=entries, pagination=_pagination(request, total, page, per_page))


async def _show_including(
    tickets: TicketService,
    principal: Principal,
    object_id: str,
    include: str,
    as_of: str | None,
    as_of_etag: str | None,
    if_none_match: str | None,
) -> ASGIApp:
    """The ticket with what `include` names embedded. Its ETag is a digest of this very body, not the ticket's
    etag: files come and go without changing the ticket's etag, so the etag alone would validate a stale copy."""
    names = include.split(",")
    unknown = sorted({name for name in names if name not in INCLUDES})
    if unknown:
        named = ", ".join(repr(name[:64]) for name in unknown[:MAX_NAMED_UNKNOWN])
        raise InputValidationFailure(
            "Invalid query parameters", {"include": f"unknown: {named}; known: {', '.join(INCLUDES)}"}
        )
    if as_of is not None or as_of_etag is not None:
        raise InputValidationFailure("Invalid query parameters", {"include": "not with asOf or asOfEtag"})
    ticket, embedded = await tickets.get_including(principal, object_id, names)
    body = _encoder.encode({**msgspec.structs.asdict(ticket), **embedded})
    digest = hashlib.sha256(body).hexdigest()[:32]
    etag_header = ((b"etag", _etag_header(digest).encode()),)
    if _matches(if_none_match, digest):
        return JsonResponse(b"", status=304, headers=etag_header)
    return JsonResponse(body, headers=etag_header)


def _written(message: str, written: WrittenTicket) -> UpdateTicketResponse:
    return UpdateTicketResponse(
        success=True,
        message=message,
        status=200,
        etag=str(written.etag),
        state_id=written.state_id,
        state_name=written.state_name,
        state_type=written.state_type,
    )


def _replayed(body: UpdateTicketResponse) -> UpdateTicketResponse:
    """The body of a replayed write with its Idempotent-Replayed header. Litestar sends a Response returned in place
    of the declared body as that Response; the first answer keeps Litestar's lean path for a plain body."""
    return cast(UpdateTicketResponse, Response(body, headers=_REPLAYED))


def _as_of_time(as_of: str | None, as_of_etag: str | None) -> datetime.datetime | None:
    if as_of is not None and as_of_etag is not None:
        raise InputValidationFailure("Invalid query parameters", {"asOf": "use either asOf or asOfEtag, not both"})
    if as_of is None:
        return None
    try:
        moment = datetime.datetime.fromisoformat(_SPACED_OFFSET.sub(r"+\1", as_of))
    except ValueError:
        moment = None
    if moment is None or not is_storable_time(moment):
        raise InputValidationFailure("Invalid query parameters", {"asOf": TIME_FORMAT})
    return moment


def _field_filters(request: Request[Principal, Any, Any]) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    for name, value in request.query_params.items():
        if name.startswith("data."):
            match = _FIELD_FILTER.fullmatch(name)
            if match is None:
                raise InputValidationFailure("Invalid query parameters", {name: "filter must be data.<field-uuid>"})
            filters[match.group(1)] = _filter_value(value)
    if len(filters) > MAX_FIELD_FILTERS:
        raise InputValidationFailure("Invalid query parameters", {"data": f"at most {MAX_FIELD_FILTERS} filters"})
    return filters


def _filter_value(raw: str) -> Any:
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw


def _pagination(request: Request[Principal, Any, Any], total: int, page: int, per_page: int) -> Pagination:
    last = last_page(total, per_page)
    return Pagination(
        total=total,
        per_page=per_page,
        current_page=page,
        last_page=last,
        next_page_url=_page_url(request, page + 1) if page < last else None,
        prev_page_url=_page_url(request, page - 1) if page > 1 else None,
    )


def _page_url(request: Request[Principal, Any, Any], page: int) -> str:
    query = [(name, value) for name, value in request.query_params.multi_items() if name != "page"]
    # Relative to the host: echoing the Host header back would let a client choose where the links point.
    return f"{request.url.path}?{urlencode([*query, ('page', str(page))])}"
