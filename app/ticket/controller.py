"""/api/v2/ticketing/ticket: create, read (now or as of a past version), list, the etag compare-and-swap update
(seed 002), the status change, the assignment, the deletion (seed 004) and the history.

Customer-level callers (Principal.customer_only) may create tickets and read the ones they created (the service
hides every other); updating, changing the status, assigning and deleting need an agent's permission."""

from __future__ import annotations

import datetime
import hashlib
import re
import uuid
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
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
from app.idempotency.http import (
    IDEMPOTENCY_KEY_PARAMETER,
    REPLAYED_RAW,
    IdempotencyKeyHeader,
    replayed_headers,
)
from app.observability import current_request_id
from app.query_parameters import QUERY_PREFIXES
from app.ticket.dto import (
    AssignTicketRequest,
    AssignTicketResponse,
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
from app.ticket.includes import INCLUDABLE, INCLUDE_PATTERN, parse_include
from app.ticket.listing import MAX_SEARCH_LENGTH, MAX_STATES, SORT_PATTERN, UNASSIGNED, TicketQuery
from app.ticket.service import (
    TIME_FORMAT,
    AssignedTicket,
    TicketService,
    WrittenTicket,
    as_uuid,
    is_storable_time,
    last_page,
)

_encoder = msgspec.json.Encoder()
CATALOG_TYPES = ("template", "agent", "user")
MODULE_PATTERN = "^[a-z][a-z0-9_-]{0,63}$"
# fullmatch without the anchors: Python's "$" also matches before a trailing newline.
_MODULE = re.compile(MODULE_PATTERN.removeprefix("^").removesuffix("$"))
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
# If-Match as RFC 9110 (section 13.1.1) has it: "*" or a list of entity tags ("..." or W/"..."), comma separated,
# where empty list elements are ignored (section 5.6.1), so an empty value is an empty list, which no etag matches.
# Anything else is refused as malformed.
_ENTITY_TAG = r'(?:W/)?"[!#-~]*"'
_IF_MATCH = re.compile(rf"[ \t]*(?:{_ENTITY_TAG})?(?:[ \t]*,[ \t]*(?:{_ENTITY_TAG})?)*[ \t]*")
_TAG = re.compile(r'(W/)?"([!#-~]*)"')
# The schema leaves the syntax to HTTP's definition of the header, which clients and test generators know by name.
IF_MATCH_PARAMETER = Parameter(
    name="If-Match",
    param_in=ParamType.HEADER,
    required=False,
    schema=Schema(type=OpenAPIType.STRING),
    description='Delete only if the ticket\'s etag is still this one: "<etag>" (in quotes, as the ETag header has '
    "it), or a comma-separated list of entity tags (RFC 9110); 412 PRECONDITION_FAILED otherwise, 400 when the value "
    "is not an entity-tag list. * or no If-Match: whatever its etag",
)

# Taken as any string, so that parse_include can name the unknown members; documented as what it accepts.
INCLUDE_PARAMETER = Parameter(
    name="include",
    param_in=ParamType.QUERY,
    required=False,
    schema=Schema(type=OpenAPIType.STRING, pattern=INCLUDE_PATTERN),
    description=f"Members to embed in the ticket, comma-separated: {', '.join(INCLUDABLE)} (the comments and the "
    "files the caller may see, oldest first). Not with asOf or asOfEtag. The response's ETag is then its own "
    "validator, not the ticket's etag.",
)
# A customer-level caller reads the tickets it created (TicketService.visible), with their comments and history.
_show = requires("read", READ_SCOPE, "read tickets", documented=(INCLUDE_PARAMETER,), customers=True)
_read_own = requires("read", READ_SCOPE, "read tickets", customers=True)


def _query(name: str, schema: Schema, description: str) -> Parameter:
    return Parameter(name=name, param_in=ParamType.QUERY, required=False, schema=schema, description=description)


def _time_query(name: str, description: str) -> Parameter:
    return _query(name, Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME), f"{description} (RFC 3339)")


# What the list's own checks enforce (app/ticket/listing.py); the handler takes these leniently, as text.
LIST_PARAMETERS = (
    _query(
        "state",
        Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.STRING), max_items=MAX_STATES),
        "A state's id or name (any letter case); repeat it for tickets in any of several states",
    ),
    _time_query("created_after", "Tickets created at or after this time"),
    _time_query("created_before", "Tickets created before this time"),
    _time_query("updated_after", "Tickets last changed at or after this time"),
    _time_query("updated_before", "Tickets last changed before this time"),
    _query(
        "q",
        Schema(type=OpenAPIType.STRING, min_length=1, max_length=MAX_SEARCH_LENGTH),
        "Full-text search in the display ID and every text of the ticket's data, in web-search syntax: words (all "
        'of them), "a phrase", `or`, `-word` (without it); whole words, no stemming. Without `sort`, the best matches '
        "come first.",
    ),
    _query(
        "sort",
        Schema(type=OpenAPIType.STRING, pattern=SORT_PATTERN),
        "created_at, updated_at, or data.<field-uuid> for a field's value (an enum field in the enum's order); "
        "without it, created_at, or the relevance of the matches when `q` is given",
    ),
)
# Customers may list too (their own tickets only); the list also takes field filters, data.<field-uuid>[.<op>].
_listing = requires("read", READ_SCOPE, "read tickets", customers=True, documented=LIST_PARAMETERS)
_list = {**_listing, "opt": {**_listing["opt"], QUERY_PREFIXES: ("data.",)}}
_TIME_PARAMETERS = ("created_after", "created_before", "updated_after", "updated_before")
LIST_DESCRIPTION = (
    "Paginated (`page`, `per_page` ≤ 100) with the exact `total`. Filtered by `ticket_type_id`, `state`, `assignee`, "
    "`created_by`, the time ranges (`*_after` includes its time, `*_before` excludes it), `q`, and field values: "
    "`data.<field-uuid>=<value>` for equality (the value is read as JSON when it parses, else as text) and "
    "`data.<field-uuid>.gte|gt|lte|lt=<bound>` for ranges of number, date (`format: date`) and date-time "
    "(`format: date-time`) fields; at most 10 field filters. A field named that no ticket type of the tenant has, or "
    "a range on a field of another kind, is 400 naming the parameter. Sorted by `created_at` (the default), "
    "`updated_at`, the relevance of a `q` search (the default with `q`), or a field (`sort=data.<field-uuid>`: an "
    "enum field in the enum's order, numbers as numbers, text as text, tickets without a value last), `asc` or "
    "`desc` (the default); ties go by created_at, then id, so pages never overlap. A customer-level caller sees only "
    "the tickets it created; deleted tickets are never listed."
)

_create = requires(
    "write",
    WRITE_SCOPE,
    "create a ticket",
    documented=(*CATALOG_PARAMETERS, IDEMPOTENCY_KEY_PARAMETER),
    customers=True,
)
_update = requires(
    "write", WRITE_SCOPE, "update the ticket", documented=(*CATALOG_PARAMETERS, IDEMPOTENCY_KEY_PARAMETER)
)
_change_status = requires("write", WRITE_SCOPE, "change the ticket status", documented=(IDEMPOTENCY_KEY_PARAMETER,))
_assign = requires("write", WRITE_SCOPE, "assign the ticket", documented=(IDEMPOTENCY_KEY_PARAMETER,))
_delete = requires(
    "delete", WRITE_SCOPE, "delete the ticket", documented=(IF_MATCH_PARAMETER, IDEMPOTENCY_KEY_PARAMETER)
)
# A "+" in an unencoded query string arrives as a space: "...T10:00:00 01:00" meant "+01:00".
_SPACED_OFFSET = re.compile(r" (\d{2}:?\d{2})$")

CatalogQuery = Annotated[str | None, QueryParameter(name="type")]
ModuleQuery = Annotated[str | None, QueryParameter(name="module")]
IfMatchHeader = Annotated[str | None, HeaderParameter(name="If-Match")]


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
        headers = {"ETag": _etag_header(body.etag), **replayed_headers(replayed)}
        return Response(body, status_code=201, headers=headers)

    @get(
        **_list,
        operation_id="listTickets",
        summary="List and find tickets",
        description=LIST_DESCRIPTION,
        responses=error_responses(400, 401, 404),
    )
    async def list_tickets(
        self,
        request: Request[Principal, Any, Any],
        tickets: NamedDependency[TicketService],
        page: Annotated[int, QueryParameter(ge=1, le=1_000_000)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=MAX_PER_PAGE)] = 20,
        ticket_type_id: FromQuery[uuid.UUID | None] = None,
        # "state" names Litestar's application state as a handler argument.
        states: Annotated[list[str] | None, QueryParameter(name="state")] = None,
        assignee: Annotated[
            str | None, QueryParameter(description=f"The subject tickets are assigned to; `{UNASSIGNED}`: unassigned")
        ] = None,
        created_by: Annotated[str | None, QueryParameter(description="The subject that created the tickets")] = None,
        created_after: FromQuery[str | None] = None,
        created_before: FromQuery[str | None] = None,
        updated_after: FromQuery[str | None] = None,
        updated_before: FromQuery[str | None] = None,
        q: Annotated[str | None, QueryParameter(min_length=1, max_length=MAX_SEARCH_LENGTH)] = None,
        sort: FromQuery[str | None] = None,
        order: FromQuery[Literal["asc", "desc"]] = "desc",
    ) -> TicketPage:
        """LIST_DESCRIPTION says what each parameter does; app/ticket/listing.py checks them."""
        raw = request.query_params
        if ticket_type_id is None and "ticket_type_id" in raw:
            # Litestar's lenient conversion reads "null" (or nothing) as no filter: a filter that silently does
            # nothing would look as if it worked.
            raise InputValidationFailure("The request failed validation", {"ticket_type_id": "Invalid UUID"})
        query = TicketQuery(
            page=page,
            per_page=per_page,
            type_id=ticket_type_id,
            # Read as sent: Litestar would read "null" as no value at all.
            states=tuple(raw.getall("state", [])),
            assignee=raw.get("assignee"),
            created_by=raw.get("created_by"),
            times=tuple((name, raw[name]) for name in _TIME_PARAMETERS if name in raw),
            fields=tuple((name, value) for name, value in raw.multi_items() if name.startswith("data.")),
            q=raw.get("q"),
            sort=raw.get("sort"),
            order=order,
        )
        total, rows = await tickets.page(request.user, query)
        return TicketPage(data=rows, pagination=pagination(request, total, page, per_page))

    @get(
        "/{object_id:str}",
        **_show,
        operation_id="showTicket",
        summary="Show a ticket",
        responses={
            200: ResponseSpec(TicketOut, description="The ticket; its etag also in the ETag header"),
            304: ResponseSpec(None, description="If-None-Match named the current ETag"),
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
        `include`, the ticket with those members too, under a weak ETag of its own (the ticket's etag stays in the
        body): a comment changes what is embedded but not the ticket's etag."""
        principal = request.user
        if include is not None:
            return await _show_including(request, tickets, object_id, include, if_none_match, as_of, as_of_etag)
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
        responses={
            200: ResponseSpec(UpdateTicketResponse, description="Updated; the body carries the new etag"),
            **error_responses(400, 401, 404, 413, 422),
        },
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
    ) -> ASGIApp:
        """Shallow-merges `ticketUpdate` into the ticket's data if `etag` is still current; "", null or [] clears
        a field. A stale etag is 400 ETAG_MISMATCH; success returns the new etag."""
        check_catalog(catalog_type, module)
        written, replayed = await tickets.update(
            request.user, object_id, data.etag, data.ticketUpdate, current_request_id(), idempotency_key
        )
        return _written("ticket updated successfully", written, replayed)

    @patch(
        "/{object_id:str}/status",
        **_change_status,
        operation_id="changeTicketStatus",
        summary="Change the ticket's state (etag compare-and-swap, checked against the type's workflow)",
        responses={
            200: ResponseSpec(UpdateTicketResponse, description="Moved; the body carries the new etag"),
            **error_responses(400, 401, 404, 413, 422),
        },
    )
    async def change_status(
        self,
        request: Request[Principal, Any, Any],
        tickets: NamedDependency[TicketService],
        object_id: FromPath[str],
        data: JSONBody[ChangeStatusRequest],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> ASGIApp:
        """Moves the ticket to `state` (a state id or name) if `etag` is still current: a stale etag is 400
        ETAG_MISMATCH, a move the type's workflow does not allow is 400 TRANSITION_NOT_ALLOWED listing the states
        allowed instead, and a state's guard that the data does not satisfy is 400 INPUT_VALIDATION_FAILURE naming
        the fields. `pendingUntil` is required for pending states (a pending-close ticket moves to its state's next
        state then) and refused for others. `note` is kept in the history. Success returns the new etag."""
        written, replayed = await tickets.change_status(
            request.user, object_id, data, current_request_id(), idempotency_key
        )
        return _written("ticket status changed successfully", written, replayed)

    @patch(
        "/{object_id:str}/assign",
        **_assign,
        operation_id="assignTicket",
        summary="Assign or unassign the ticket (etag compare-and-swap)",
        responses={
            200: ResponseSpec(AssignTicketResponse, description="Assigned; the new etag also in the ETag header"),
            **error_responses(400, 401, 404, 413, 422),
        },
    )
    async def assign_ticket(
        self,
        request: Request[Principal, Any, Any],
        tickets: NamedDependency[TicketService],
        object_id: FromPath[str],
        data: JSONBody[AssignTicketRequest],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> ASGIApp:
        """Sets `assignee` (a subject; null unassigns) if `etag` is still current: a stale etag is 400
        ETAG_MISMATCH, as for an update. Any subject is accepted, known to the users directory or not. Success
        returns the new etag; the history records the old and the new assignee."""
        assigned, replayed = await tickets.assign(request.user, object_id, data, current_request_id(), idempotency_key)
        message = "ticket assigned successfully" if assigned.assignee is not None else "ticket unassigned successfully"
        body = _assigned(message, assigned)
        headers = ((b"etag", _etag_header(body.etag).encode()), *(REPLAYED_RAW if replayed else ()))
        return JsonResponse(_encoder.encode(body), headers=headers)

    @delete(
        "/{object_id:str}",
        **_delete,
        operation_id="deleteTicket",
        summary="Delete a ticket",
        status_code=204,
        responses={
            204: ResponseSpec(None, description="Deleted (or, with Idempotent-Replayed: true, deleted before)"),
            **error_responses(400, 401, 404, 412, 422),
        },
    )
    async def delete_ticket(
        self,
        request: Request[Principal, Any, Any],
        tickets: NamedDependency[TicketService],
        object_id: FromPath[str],
        if_match: IfMatchHeader = None,
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[None]:
        """Deletes the ticket (seed 004: 204 No Content), if `If-Match` names its current etag (412
        PRECONDITION_FAILED if not; without If-Match, or with *, whatever its etag). From then on it is not found by
        any route and its display ID is never given out again; its history stays readable for administrators."""
        accepted = _accepted_etags(if_match)
        _, replayed = await tickets.delete(request.user, object_id, accepted, current_request_id(), idempotency_key)
        return Response(None, status_code=204, headers=replayed_headers(replayed))

    @get(
        "/{object_id:str}/history",
        **_read_own,
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
        field's old and new value, each state change (with its note and pending time), each assignment (old and new
        assignee), the deletion, and for each the actor, the time, the request id, the support flag and the etag it
        produced. A deleted ticket's history stays readable for administrators (tickets:admin scope, admin role)."""
        total, entries = await tickets.history(request.user, object_id, page, per_page)
        return HistoryPage(data=entries, pagination=pagination(request, total, page, per_page))


async def _show_including(
    request: Request[Principal, Any, Any],
    tickets: TicketService,
    object_id: str,
    include: str,
    if_none_match: str | None,
    as_of: str | None,
    as_of_etag: str | None,
) -> ASGIApp:
    names = parse_include(include)
    if as_of is not None or as_of_etag is not None:
        # What is embedded is current: next to a past version of the ticket it would be a document no GET returned.
        raise InputValidationFailure(
            "Invalid query parameters", {"include": "cannot be combined with asOf or asOfEtag"}
        )
    ticket, members = await tickets.get_including(request.user, object_id, names)
    document = _encoder.encode(ticket)
    body = b"".join((document[:-1], *(b',"%s":%s' % (name.encode(), value) for name, value in members), b"}"))
    # Derived from everything the body says, the ticket's etag included: a copy cached before a comment was added
    # is stale, although the ticket's etag did not change.
    validator = hashlib.sha256(body).hexdigest()[:32]
    etag_header = ((b"etag", f'W/"{validator}"'.encode()),)
    if _matches(if_none_match, validator):
        return JsonResponse(b"", status=304, headers=etag_header)
    return JsonResponse(body, headers=etag_header)


def _written(message: str, written: WrittenTicket, replayed: bool) -> JsonResponse:
    """An update's or a status change's answer, sent through the lean response path (the hot write path: Litestar's
    Response costs about three times as much per request)."""
    body = UpdateTicketResponse(
        success=True,
        message=message,
        status=200,
        etag=str(written.etag),
        state_id=written.state_id,
        state_name=written.state_name,
        state_type=written.state_type,
    )
    return JsonResponse(_encoder.encode(body), headers=REPLAYED_RAW if replayed else ())


def _assigned(message: str, assigned: AssignedTicket) -> AssignTicketResponse:
    return AssignTicketResponse(
        success=True,
        message=message,
        status=200,
        etag=str(assigned.etag),
        state_id=assigned.state_id,
        state_name=assigned.state_name,
        state_type=assigned.state_type,
        assignee=assigned.assignee,
    )


def _accepted_etags(if_match: str | None) -> list[uuid.UUID] | None:
    """The etags an If-Match accepts; None for any (no If-Match, or *). A weak tag never matches (If-Match compares
    strongly), nor does one that is not a UUID (it was never issued), so the list may be empty."""
    if if_match is None or if_match.strip(" \t") == "*":
        return None
    if _IF_MATCH.fullmatch(if_match) is None:
        raise InputValidationFailure(
            "Invalid request headers", {"If-Match": 'the ticket\'s etag in quotes ("<etag>"), a list of them, or *'}
        )
    accepted = []
    for tag in _TAG.finditer(if_match):
        etag = None if tag.group(1) else as_uuid(tag.group(2))
        if etag is not None:
            accepted.append(etag)
    return accepted


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


def pagination(request: Request[Principal, Any, Any], total: int, page: int, per_page: int) -> Pagination:
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
