"""The ticket list's filters and sorts: what each query parameter means, checked against the tenant's ticket types
before any SQL runs. Every value that cannot be used is a 400 naming its parameter, so a mistyped filter never
passes for one that matched nothing.

A field is named by its UUID (`data.<field-uuid>`). Its kind comes from its JSON Schema in the ticket types that
declare it: an `enum` (sorted in the enum's order), a number (`integer`/`number`), a date (`string` with
`format: date`, compared as YYYY-MM-DD text), a date-time (`format: date-time`, compared as points in time), a
boolean (sorted false, true), other text, or anything else (arrays, objects: equality only).
"""

from __future__ import annotations

import datetime
import math
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from app.errors import InputValidationFailure
from app.ticket.repository import FieldRange, FieldSortKind, RangeKind, RangeOperator, TicketFilter, TicketOrder
from app.ticket_type.compiled import CompiledType
from app.ticket_type.values import value_problem

MAX_FIELD_FILTERS = 10
MAX_STATES = 20
MAX_SEARCH_LENGTH = 500
UNASSIGNED = "none"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# Used with fullmatch: Python's "$" would also accept a trailing newline.
_FIELD_PARAMETER = re.compile(rf"data\.({_UUID})(?:\.(gte|gt|lte|lt))?")
_SORT_FIELD = re.compile(rf"data\.({_UUID})")
SORT_PATTERN = rf"^(created_at|updated_at|data\.{_UUID})$"
_RANGE_OPERATORS: dict[str, RangeOperator] = {"gte": ">=", "gt": ">", "lte": "<=", "lt": "<"}
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A "+" in an unencoded query string arrives as a space: "...T10:00:00 01:00" meant "+01:00".
_SPACED_OFFSET = re.compile(r" (\d{2}:?\d{2})$")

FieldKind = Literal["enum", "number", "date", "date-time", "boolean", "text", "other"]

# Refusals that depend on the tenant's data (its states and ticket types), not on the form of the value.
UNKNOWN_STATE = "no ticket state of this tenant has this id or name"
UNKNOWN_FIELD = "no ticket type of this tenant has a field with this id"
UNKNOWN_TYPE_FIELD = "the ticket type ticket_type_id names has no field with this id"
MIXED_FIELD = "the ticket types of this tenant declare this field differently: add ticket_type_id to choose one"
NOT_A_RANGE_FIELD = "a range needs a number, date or date-time field; this field is {kind}"
NOT_A_SORT_FIELD = (
    "only a field holding one enum member, number, boolean or text can be sorted by; this field is {kind}"
)
FIELD_FORMAT = "filter must be data.<field-uuid> or data.<field-uuid>.<gte|gt|lte|lt>"
TIME_FORMAT = "an RFC 3339 date-time with a time zone, in the years 1 to 9999 in UTC, e.g. 2026-11-22T18:00:00Z"
_RANGE_KINDS: dict[FieldKind, RangeKind] = {"number": "number", "date": "date", "date-time": "date-time"}
_BOUND_FORMATS: dict[RangeKind, str] = {
    "number": "must be a number",
    "date": "must be a date, YYYY-MM-DD",
    "date-time": TIME_FORMAT,
}


@dataclass(frozen=True, slots=True)
class TicketQuery:
    """A list request as the client sent it (values still text, except the ones Litestar already typed)."""

    page: int
    per_page: int
    type_id: uuid.UUID | None = None
    states: tuple[str, ...] = ()
    assignee: str | None = None
    created_by: str | None = None
    # Parameter name (created_after, created_before, updated_after, updated_before) to its value.
    times: tuple[tuple[str, str], ...] = ()
    # Every data.* parameter: (name, value).
    fields: tuple[tuple[str, str], ...] = ()
    q: str | None = None
    sort: str | None = None
    order: Literal["asc", "desc"] = "desc"


def check_text(query: TicketQuery) -> None:
    """The free-text parameters: anything PostgreSQL can store."""
    reason: dict[str, str] = {}
    for name, value in (("q", query.q), ("assignee", query.assignee), ("created_by", query.created_by)):
        if value is not None and (problem := value_problem(value)) is not None:
            reason[name] = problem
    for value in query.states:
        if (problem := value_problem(value)) is not None:
            reason["state"] = problem
    if len(query.states) > MAX_STATES:
        reason["state"] = f"at most {MAX_STATES} states"
    if reason:
        raise InputValidationFailure("Invalid query parameters", reason)


def plan(
    query: TicketQuery,
    types: tuple[CompiledType, ...],
    state_ids: tuple[uuid.UUID, ...] | None,
    creator: str | None,
    creator_realm: str | None = None,
) -> tuple[TicketFilter, TicketOrder]:
    """The filter and the order of a list request. `types` are the tenant's ticket types (needed only when a field
    is named), `state_ids` the states the `state` parameters resolved to, `creator` the subject a customer-level
    caller is limited to (or the created_by filter), `creator_realm` that caller's realm."""
    reason: dict[str, str] = {}
    times = {name: _time(name, value, reason) for name, value in query.times}
    contains: list[str] = []
    ranges: list[FieldRange] = []
    if len(query.fields) > MAX_FIELD_FILTERS:
        raise InputValidationFailure("Invalid query parameters", {"data": f"at most {MAX_FIELD_FILTERS} filters"})
    for name, value in query.fields:
        match = _FIELD_PARAMETER.fullmatch(name)
        if match is None:
            reason[name] = FIELD_FORMAT
            continue
        field_id, operator = match.groups()
        if operator is None:
            # Equality compares JSON values: it needs the field to exist, whatever its kind.
            if not _declaring(field_id, query.type_id, types):
                reason[name] = UNKNOWN_FIELD if query.type_id is None else UNKNOWN_TYPE_FIELD
            elif (problem := value_problem(decoded := _json_or_text(value))) is not None:
                reason[name] = problem
            else:
                contains.append(_json.encode({field_id: decoded}).decode())
            continue
        kind = _kind(field_id, query.type_id, types, name, reason)
        if kind is None:
            continue
        if (range_kind := _RANGE_KINDS.get(kind[0])) is None:
            reason[name] = NOT_A_RANGE_FIELD.format(kind=_DESCRIBED[kind[0]])
        else:
            bound = _bound(range_kind, value)
            if bound is None:
                reason[name] = _BOUND_FORMATS[range_kind]
            else:
                ranges.append(FieldRange(field_id, _RANGE_OPERATORS[operator], range_kind, bound))
    order = _order(query, types, reason)
    if reason:
        raise InputValidationFailure("Invalid query parameters", reason)
    where = TicketFilter(
        type_id=query.type_id,
        state_ids=state_ids,
        assignee=None if query.assignee == UNASSIGNED else query.assignee,
        unassigned=query.assignee == UNASSIGNED,
        created_by=creator,
        created_realm=creator_realm,
        created_from=times.get("created_after"),
        created_until=times.get("created_before"),
        updated_from=times.get("updated_after"),
        updated_until=times.get("updated_before"),
        contains=tuple(contains),
        ranges=tuple(ranges),
        text=query.q,
    )
    return where, order


def _order(query: TicketQuery, types: tuple[CompiledType, ...], reason: dict[str, str]) -> TicketOrder:
    descending = query.order == "desc"
    if query.sort is None:
        return TicketOrder("rank" if query.q is not None else "created_at", descending)
    if query.sort in ("created_at", "updated_at"):
        return TicketOrder("created_at" if query.sort == "created_at" else "updated_at", descending)
    match = _SORT_FIELD.fullmatch(query.sort)
    if match is None:
        reason["sort"] = "one of created_at, updated_at, data.<field-uuid>"
        return TicketOrder("created_at", descending)
    field_id = match.group(1)
    kind = _kind(field_id, query.type_id, types, "sort", reason)
    if kind is None:
        return TicketOrder("created_at", descending)
    sort_kind, values = kind
    sorted_as: FieldSortKind
    if sort_kind in ("enum", "boolean"):
        sorted_as = "enum"
    elif sort_kind == "number":
        sorted_as = "number"
    elif sort_kind in ("text", "date", "date-time"):
        sorted_as = "text"
    else:
        reason["sort"] = NOT_A_SORT_FIELD.format(kind=_DESCRIBED[sort_kind])
        return TicketOrder("created_at", descending)
    return TicketOrder("field", descending, field_id, sorted_as, values)


_json = msgspec.json.Encoder()
_BOOLEANS = ("false", "true")


def field_kind(schema: dict[str, Any]) -> tuple[FieldKind, tuple[str, ...]]:
    """A field's kind from its JSON Schema, and for an enum (or a boolean) its values in order, as JSON text."""
    enum = schema.get("enum")
    if isinstance(enum, list):
        return "enum", tuple(_json.encode(value).decode() for value in enum)
    declared = schema.get("type")
    types = {declared} if isinstance(declared, str) else set(declared) if isinstance(declared, list) else set()
    types.discard("null")
    if types and types <= {"integer", "number"}:
        return "number", ()
    if types == {"boolean"}:
        return "boolean", _BOOLEANS
    if types == {"string"}:
        text_format = schema.get("format")
        if text_format in ("date", "date-time"):
            return text_format, ()
        return "text", ()
    return "other", ()


def _kind(
    field_id: str, type_id: uuid.UUID | None, types: tuple[CompiledType, ...], name: str, reason: dict[str, str]
) -> tuple[FieldKind, tuple[str, ...]] | None:
    """The field's kind in the ticket types that declare it (only in ticket_type_id's type when that is given)."""
    kinds = {field_kind(t.fields[field_id].definition.schema) for t in _declaring(field_id, type_id, types)}
    if not kinds:
        reason[name] = UNKNOWN_FIELD if type_id is None else UNKNOWN_TYPE_FIELD
        return None
    if len(kinds) > 1:
        reason[name] = MIXED_FIELD
        return None
    return kinds.pop()


def _declaring(field_id: str, type_id: uuid.UUID | None, types: tuple[CompiledType, ...]) -> list[CompiledType]:
    return [t for t in types if (type_id is None or t.id == type_id) and field_id in t.fields]


_DESCRIBED: dict[FieldKind, str] = {
    "enum": "an enum field",
    "number": "a number field",
    "date": "a date field",
    "date-time": "a date-time field",
    "boolean": "a boolean field",
    "text": "text",
    "other": "neither a number, text nor an enum",
}


def _json_or_text(raw: str) -> Any:
    """A filter value: read as JSON when it parses (1 is the number, "1" the text), else taken as text."""
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw


def _bound(kind: RangeKind, raw: str) -> str | None:
    """A range's bound as the SQL compares it, or None when it is not one of the field's kind."""
    if kind == "number":
        try:
            number = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return None
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            return None
        return _json.encode(number).decode()
    if kind == "date":
        if _ISO_DATE.fullmatch(raw) is None:
            return None
        try:
            return datetime.date.fromisoformat(raw).isoformat()
        except ValueError:
            return None
    moment = parse_time(raw)
    return None if moment is None else moment.astimezone(datetime.UTC).isoformat()


def _time(name: str, raw: str, reason: dict[str, str]) -> datetime.datetime | None:
    moment = parse_time(raw)
    if moment is None:
        reason[name] = TIME_FORMAT
    return moment


def parse_time(raw: str) -> datetime.datetime | None:
    """An RFC 3339 date-time with a time zone that is still a time once in UTC; None for anything else."""
    try:
        moment = datetime.datetime.fromisoformat(_SPACED_OFFSET.sub(r"+\1", raw))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    try:
        moment.astimezone(datetime.UTC)
    except OverflowError:
        return None
    return moment
