"""Schemathesis hooks for tests/e2e/test_openapi_conformance.py (loaded by Schemathesis through SCHEMATHESIS_HOOKS;
the test writes what they need to the JSON file named by CONFORMANCE_FIXTURES).

1. Real ids. A generated body names random ticket types, field UUIDs, etags and states, so every ticket write would
   be refused and the success responses of the main writes never checked against the document. Just before a
   schema-valid body of a create, update, status change or assignment is sent, `before_call` puts real ones into
   most of them (about three in four; the others go as generated): a real ticketTypeId with values for its fields,
   the ticket's current etag (read just before) with values for its fields, a state other than the ticket's current
   one, and an unused Idempotency-Key. Values Schemathesis generated are kept where the field's schema accepts them.
2. A tally. `after_call` writes each response's operation and status to the file CONFORMANCE_FIXTURES names, so the
   test can require that each main write succeeded during the run.
3. Exemptions. Three built-in checks conflict with the contract in named cases. For each, the run excludes the
   built-in check and registers the wrapper below instead: the wrapper runs the built-in check and lets through
   exactly the cases in EXEMPTIONS (or the tenant header, or a ticket type's archive), so every other request is
   judged as strictly as before.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import jsonschema
import msgspec
import schemathesis
from schemathesis.core.parameters import ParameterLocation
from schemathesis.openapi.checks import MissingHeaderNotRejected, RejectedPositiveData, UseAfterFree
from schemathesis.specs.openapi import checks as builtin

from app.schema_validation import safe_validator
from app.ticket import listing
from app.ticket_type.dto import TicketTypeDefinition, definition_schema
from tests.support import TENANT_NOT_FOUND

API = "/api/v2/ticketing"
CREATE = f"POST {API}/ticket"
UPDATE = f"PATCH {API}/ticket/{{object_id}}/update"
CHANGE_STATUS = f"PATCH {API}/ticket/{{object_id}}/status"
ASSIGN = f"PATCH {API}/ticket/{{object_id}}/assign"
DELETE_TICKET = f"DELETE {API}/ticket/{{object_id}}"
CREATE_COMMENT = f"POST {API}/ticket/{{object_id}}/comments"
SHOW = f"GET {API}/ticket/{{object_id}}"
UPLOAD = f"POST {API}/ticket/{{object_id}}/attachments"
DELETE_ATTACHMENT = f"DELETE {API}/attachments/{{attachment_id}}"
LIST = f"GET {API}/ticket"
CREATE_TYPE = f"POST {API}/ticket-type"
REPLACE_TYPE = f"PUT {API}/ticket-type/{{type_id}}"
ARCHIVE_TYPE = f"DELETE {API}/ticket-type/{{type_id}}"
CREATE_STATE = f"POST {API}/ticket-state"
CHANGE_STATE = f"PUT {API}/ticket-state/{{state_id}}"
DELETE_STATE = f"DELETE {API}/ticket-state/{{state_id}}"
CREATE_WEBHOOK = f"POST {API}/webhook"
CHANGE_WEBHOOK = f"PUT {API}/webhook/{{webhook_id}}"
DELETE_WEBHOOK = f"DELETE {API}/webhook/{{webhook_id}}"
ROTATE_WEBHOOK = f"POST {API}/webhook/{{webhook_id}}/rotate"
RETRY_DELIVERY = f"POST {API}/webhook/{{webhook_id}}/deliveries/{{delivery_id}}/retry"
REPLAY = f"POST {API}/webhook/{{webhook_id}}/replay"
TEST_WEBHOOK = f"POST {API}/webhook/{{webhook_id}}/test"
CREATE_USER = f"POST {API}/users"
CHANGE_USER = f"PUT {API}/users/{{user_id}}"
DEACTIVATE_USER = f"DELETE {API}/users/{{user_id}}"
SIGN_IN = f"POST {API}/auth/login"
ACCEPT_INVITATION = f"POST {API}/auth/invitation"
V1_CHANGE_STATUS = "PATCH /api/v1/tickets/{ticket_id}/status"
V1_UPDATE = "PUT /api/v1/tickets/{ticket_id}"
V1_MEMBERS = {"category", "title", "description", "attachments", "notes"}
V1_STATE_WRITES = (
    "POST /api/v1/ticket_states",
    "PUT /api/v1/ticket_states/{ticket_state_id}",
    "DELETE /api/v1/ticket_states/{ticket_state_id}",
)
# Seed 003's refusals by the rules over the tenant's other states and ticket types (its own envelope, 422).
V1_STATE_RULE = re.compile(
    r"^(?:(?:name|next_state_id|default_create|default_follow_up|active): |Can't delete, object has references\.$)"
)
INVALID = "INPUT_VALIDATION_FAILURE"
FIELD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# (Records are NamedTuples: dataclasses need the module in sys.modules, and Schemathesis loads this file without it.)
FIXTURES: dict[str, Any] = json.loads(Path(os.environ["CONFORMANCE_FIXTURES"]).read_text())


# --- 1. real ids --------------------------------------------------------------------------------------------------


class Field(NamedTuple):
    id: str
    required: bool
    read_only: bool
    sample: Any  # a value the field's schema accepts
    validator: jsonschema.Draft202012Validator

    @classmethod
    def of(cls, field: dict[str, Any]) -> Field:
        validator = jsonschema.Draft202012Validator(field["schema"])
        return cls(field["id"], field["required"], field["readOnly"], field["sample"], validator)

    def value(self, generated: Any) -> Any:
        """The generated value if the field takes it, else the sample."""
        return generated if self.validator.is_valid(generated) else self.sample


FIELDS = [Field.of(field) for field in FIXTURES["ticket_type"]["fields"]]
_keys = itertools.count()
_http = httpx.Client(base_url=FIXTURES["base_url"], headers=FIXTURES["headers"], timeout=10)


def _draw(body: Any) -> int:
    """A number derived from the generated body: the run's choices follow the seed, like the generation."""
    return zlib.crc32(json.dumps(body, sort_keys=True, default=str).encode())


def _fill(body: dict[str, Any], member: str, fields: list[Field], draw: int) -> dict[str, Any]:
    """Values for the required fields and a drawn share of the others, taken from body[member] where valid."""
    generated = list(body[member].values()) if isinstance(body.get(member), dict) else []
    chosen = [f for i, f in enumerate(fields) if f.required or draw >> (i + 2) & 1] or fields[:1]
    return {f.id: f.value(generated[i]) if i < len(generated) else f.sample for i, f in enumerate(chosen)}


def _current(case: Any) -> dict[str, Any] | None:
    """The ticket the case's path names, as a GET shows it now (None when it does not exist)."""
    response = _http.get(f"{API}/ticket/{case.path_parameters['object_id']}")
    ticket: dict[str, Any] | None = response.json() if response.status_code == 200 else None
    return ticket


def _create(case: Any, draw: int) -> None:
    case.body = {"ticketTypeId": FIXTURES["ticket_type"]["id"], "data": _fill(case.body, "data", FIELDS, draw)}


def _update(case: Any, draw: int) -> None:
    ticket = _current(case)
    if ticket is not None:
        writable = [f for f in FIELDS if not f.read_only]
        case.body = {"etag": ticket["etag"], "ticketUpdate": _fill(case.body, "ticketUpdate", writable, draw)}


def _change_status(case: Any, draw: int) -> None:
    ticket = _current(case)
    if ticket is None:
        return
    # A state never follows itself; the states here are active and not pending (no pendingUntil needed).
    targets = [state for state in FIXTURES["states"] if state["id"] != ticket["state_id"]]
    target = targets[draw % len(targets)]
    note = case.body.get("note")
    case.body = {"etag": ticket["etag"], "state": target["name"] if draw & 2 else target["id"]}
    if note is None or isinstance(note, str):
        case.body["note"] = note


def _assign(case: Any, draw: int) -> None:
    ticket = _current(case)
    if ticket is not None:
        case.body = {**case.body, "etag": ticket["etag"]}  # any subject may be the assignee


REAL_IDS: dict[str, Callable[[Any, int], None]] = {
    CREATE: _create,
    UPDATE: _update,
    CHANGE_STATUS: _change_status,
    ASSIGN: _assign,
}


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: dict[str, Any]) -> None:
    fill = REAL_IDS.get(case.operation.label)
    meta = case.meta
    if fill is None or meta is None or meta.is_negative_at(ParameterLocation.BODY) or not isinstance(case.body, dict):
        return
    draw = _draw(case.body)
    if draw % 4 == 0:
        return  # sent as generated
    fill(case, draw)
    if case.headers and not meta.is_negative_at(ParameterLocation.HEADER):
        for name in [name for name in case.headers if name.lower() == "idempotency-key"]:
            case.headers[name] = f"conformance-{next(_keys)}"  # a reused key would replay or be refused (422)


# --- 2. the tally ---------------------------------------------------------------------------------------------------


@schemathesis.hook
def after_call(ctx: Any, case: Any, response: Any) -> None:
    with Path(FIXTURES["tally"]).open("a") as tally:
        tally.write(f"{case.operation.label}\t{response.status_code}\n")


# --- 3. exemptions --------------------------------------------------------------------------------------------------


def _reason(body: dict[str, Any]) -> dict[str, Any]:
    reason = body.get("validationResult", {}).get("reason", {})
    return reason if isinstance(reason, dict) else {}


def _refused(message: str, keys: set[str] | None = None) -> Callable[[Any, dict[str, Any]], bool]:
    """An INPUT_VALIDATION_FAILURE with this message (whose reason names only these keys, if given)."""
    return lambda case, body: (
        body.get("code") == INVALID and body.get("message") == message and (keys is None or set(_reason(body)) <= keys)
    )


def _code(code: str) -> Callable[[Any, dict[str, Any]], bool]:
    return lambda case, body: body.get("code") == code


def _field_values(case: Any, body: dict[str, Any]) -> bool:
    """Refused values of the ticket type's fields: every problem is named by a field UUID."""
    reason = _reason(body)
    return (
        body.get("code") == INVALID
        and body.get("message") in ("Ticket data failed validation", "Ticket update failed validation")
        and bool(reason)
        and all(FIELD_ID.fullmatch(key) or key == "_more" for key in reason)
    )


_definition_schema = safe_validator(definition_schema())


def _definition_rule(case: Any, body: dict[str, Any]) -> bool:
    """A definition refused after it passed the schema the document shows (schemas/ticket-type.schema.json, checked
    here as the server checks it): so by a rule beyond it. A refusal by that schema itself is never exempt."""
    reason = _reason(body)
    if body.get("code") != INVALID or body.get("message") != "Invalid ticket type definition":
        return False
    if set(reason) == {"definition"}:
        return str(reason["definition"]).startswith("larger than")  # a size in bytes, which no schema can state
    try:  # what the server checks: the body as decoded (a null workflow is the default, left out)
        decoded = msgspec.to_builtins(msgspec.convert(case.body, TicketTypeDefinition, strict=True))
    except msgspec.ValidationError:
        return False
    return bool(_definition_schema.is_valid(decoded))


# Comment content is HTML, sanitised before it is stored: what is left must show text and fit the limit escaped.
SANITISED_CONTENT_REASONS = {
    "shows no text once sanitised (scripts, styles and unsupported markup are removed)",
    "at most 20000 characters once sanitised (text escaped)",
}


def _sanitised_content(case: Any, body: dict[str, Any]) -> bool:
    reason = _reason(body)
    return (
        _refused("Invalid comment", {"content"})(case, body)
        and bool(reason)
        and reason["content"] in SANITISED_CONTENT_REASONS
    )


def _refused_file(case: Any, body: dict[str, Any]) -> bool:
    """Issue 10: a file's type "is determined from the content ... a mismatch or a forbidden type is 400 naming the
    file", and which types a tenant accepts is its own setting: generated bytes are mostly of no type it accepts."""
    return body.get("code") == INVALID and str(body.get("message", "")).startswith("The file ")


# The service's own wording of the rules on state names and notes, which the document states: never exempt.
STATE_FORMAT_REASONS = {"1 to 100 characters, without leading or trailing spaces", "at most 2000 characters"}
# The members of a ticket state whose refusals depend on the tenant's other states and ticket types.
STATE_RULE_MEMBERS = {"name", "next_state_id", "default_create", "default_follow_up", "active"}


def _list_rule(case: Any, body: dict[str, Any]) -> bool:
    """A state that is not one of the tenant's, a sorted field that is not one of its ticket types' fields, or a time
    outside the years 1 to 9999 in UTC."""
    reason = _reason(body)
    return (
        body.get("code") == INVALID
        and body.get("message") == "Invalid query parameters"
        and bool(reason)
        and all(_refused_list_value(name, problem) for name, problem in reason.items())
    )


def _refused_list_value(name: str, problem: str) -> bool:
    if name == "state":
        return problem.startswith(f"{listing.UNKNOWN_STATE}: ")
    if name in ("created_after", "created_before", "updated_after", "updated_before"):
        return problem == listing.TIME_FORMAT
    if name == "sort":
        return problem in (listing.UNKNOWN_FIELD, listing.UNKNOWN_TYPE_FIELD)
    return False


def _state_rule(case: Any, body: dict[str, Any]) -> bool:
    reason = _reason(body)
    return (
        body.get("code") == INVALID
        and body.get("message") in ("Invalid ticket state", "Invalid ticket state change")
        and bool(reason)
        and set(reason) <= STATE_RULE_MEMBERS
        and not STATE_FORMAT_REASONS & set(reason.values())
    )


# Every write takes an Idempotency-Key (issue 9).
TAKING_IDEMPOTENCY_KEYS = (
    *(CREATE, UPDATE, CHANGE_STATUS, ASSIGN, DELETE_TICKET, CREATE_COMMENT, UPLOAD, DELETE_ATTACHMENT),
    *(CREATE_TYPE, REPLACE_TYPE, ARCHIVE_TYPE, CREATE_STATE, CHANGE_STATE, DELETE_STATE),
    *(CREATE_WEBHOOK, CHANGE_WEBHOOK, DELETE_WEBHOOK, ROTATE_WEBHOOK, RETRY_DELIVERY, REPLAY, TEST_WEBHOOK),
    *(CREATE_USER, CHANGE_USER, DEACTIVATE_USER),
)
V1_WRITES = (V1_CHANGE_STATUS, V1_UPDATE)
# Seed 004's routes.
V1_CREATE = "POST /api/v1/tickets"
V1_PATCH = "PATCH /api/v1/tickets/{ticket_id}"
V1_COMMENT = "POST /api/v1/tickets/{ticket_id}/comments"
V1_PLATFORM_WRITES = (V1_CREATE, V1_PATCH, "DELETE /api/v1/tickets/{ticket_id}", V1_COMMENT)
V1_SIGN_IN = "POST /api/v1/auth/login"


def _platform_error(code: str, fields: Callable[[str], bool]) -> Callable[[Any, dict[str, Any]], bool]:
    """Seed 004's envelope with this code, its details naming only fields `fields` accepts (at least one)."""

    def matches(case: Any, body: dict[str, Any]) -> bool:
        error = body.get("error")
        details = error.get("details") if isinstance(error, dict) else None
        return (
            isinstance(error, dict)
            and error.get("code") == code
            and isinstance(details, list)
            and bool(details)
            and all(isinstance(detail, dict) and fields(str(detail.get("field"))) for detail in details)
        )

    return matches


def _v1_refused(members: set[str]) -> Callable[[Any, dict[str, Any]], bool]:
    """The seeds' VALIDATION_ERROR naming only these members (never the body as a whole)."""

    def matches(case: Any, body: dict[str, Any]) -> bool:
        error = body.get("error") if body.get("success") is False else None
        details = error.get("details") if isinstance(error, dict) else None
        return (
            isinstance(error, dict)
            and error.get("code") == "VALIDATION_ERROR"
            and isinstance(details, dict)
            and bool(details)
            and set(details) <= members
        )

    return matches


def _v1_code(code: str) -> Callable[[Any, dict[str, Any]], bool]:
    return lambda case, body: isinstance(body.get("error"), dict) and body["error"].get("code") == code


class Exemption(NamedTuple):
    operations: tuple[str, ...]
    status: int
    matches: Callable[[Any, dict[str, Any]], bool]  # (the case, the response body)
    why: str


# Answers other than 2xx that schema-valid requests get, and why the document cannot say so. Each is the contract's
# (seed 002) or a rule over stored data or earlier requests, which no request schema can express.
EXEMPTIONS = (
    Exemption(
        (UPDATE, CHANGE_STATUS, ASSIGN),
        400,
        _code("ETAG_MISMATCH"),
        "seed 002: an etag that is not the ticket's current one is 400 ETAG_MISMATCH (assign: issue 10, like /update)",
    ),
    Exemption(
        (CREATE,),
        400,
        _refused("Invalid ticket type", {"ticketTypeId"}),
        "ticketTypeId must name an active ticket type of the tenant",
    ),
    Exemption(
        (CREATE, UPDATE),
        400,
        _field_values,
        "seed 002: values are checked against the ticket type's fields (per tenant, per type), naming field UUIDs",
    ),
    Exemption(
        (CHANGE_STATUS,),
        400,
        _refused("Invalid ticket status change", {"state"}),
        "the state must name an active state of the tenant",
    ),
    Exemption(
        (CHANGE_STATUS,),
        400,
        _code("TRANSITION_NOT_ALLOWED"),
        "the ticket type's workflow decides which states may follow the ticket's current one",
    ),
    Exemption(
        (CHANGE_STATUS,),
        400,
        lambda case, body: (
            body.get("code") == INVALID and str(body.get("message")).startswith("The ticket cannot enter ")
        ),
        "the workflow's guards on the ticket's data",
    ),
    Exemption(
        (CHANGE_STATUS,),
        400,
        _refused("Invalid request body", {"pendingUntil"}),
        "pendingUntil: required and in the future for a pending target state, refused for others, years 1-9999 UTC",
    ),
    Exemption(
        (SHOW,),
        400,
        _refused("Invalid query parameters", {"asOf"}),
        "asOf and asOfEtag exclude each other, and asOf must fall in the years 1 to 9999 in UTC",
    ),
    Exemption(
        (SHOW,),
        400,
        lambda case, body: (
            body.get("code") == INVALID and _reason(body) == {"include": "cannot be combined with asOf or asOfEtag"}
        ),
        "include (what is embedded now) goes with neither asOf nor asOfEtag",
    ),
    Exemption(
        (LIST,),
        400,
        _list_rule,
        "a state filter names one of the tenant's states, a sort one of its ticket types' fields, a time the years "
        "1 to 9999 in UTC",
    ),
    Exemption(
        (CREATE, CREATE_COMMENT, UPLOAD),
        400,
        _refused_file,
        "issue 10: a file's type is read from its content, must agree with the declared one and be one the tenant "
        "accepts",
    ),
    Exemption(
        (CREATE_COMMENT,),
        400,
        _sanitised_content,
        "comment content must show text and fit the limit once sanitised, which depends on the sanitiser",
    ),
    Exemption(
        (CREATE_TYPE, REPLACE_TYPE),
        400,
        _definition_rule,
        "field schemas valid and safe, field ids and keys unique and never reused, defaults valid, the prefix free "
        "and unchanged, the workflow's states the tenant's and its tickets' states kept",
    ),
    Exemption(
        (REPLACE_TYPE,),
        400,
        _refused("Ticket type is archived", {"id"}),
        "an archived ticket type is not changed",
    ),
    Exemption(
        (CREATE_STATE, CHANGE_STATE, DELETE_STATE),
        400,
        _state_rule,
        "state names unique in the tenant, next_state_id an active other state, one default of each kind, states "
        "that workflows name or start in kept",
    ),
    Exemption(
        (CREATE_WEBHOOK, CHANGE_WEBHOOK),
        400,
        _refused("Invalid webhook", {"url"}),
        "issue 11: a webhook URL must be https (plain http only to loopback) and resolve only to public addresses, "
        "which depends on DNS and the service's settings",
    ),
    Exemption(
        (REPLAY,),
        400,
        lambda case, body: body.get("code") == INVALID and body.get("message") == "Invalid replay",
        "issue 11: a replay names either a ticket and a sequence range or a time range (exactly one, ordered, with "
        "a time zone)",
    ),
    Exemption(
        TAKING_IDEMPOTENCY_KEYS,
        422,
        _code("IDEMPOTENCY_KEY_REUSED"),
        "issue 9: an Idempotency-Key sent again with another request is refused with 422",
    ),
    Exemption(
        (CREATE_USER, CHANGE_USER),
        409,
        _code("USER_EXISTS"),
        "issue 12: an email is one user's in a realm (the users made before decide)",
    ),
    Exemption(
        (SIGN_IN,),
        401,
        _code("INVALID_CREDENTIALS"),
        "issue 12: an email and password must be a user's (one answer for every way they are not)",
    ),
    Exemption(
        (SIGN_IN,),
        429,
        _code("TOO_MANY_ATTEMPTS"),
        "issue 12: failed sign-ins before this one make the account or address wait",
    ),
    Exemption(
        (SIGN_IN, ACCEPT_INVITATION),
        400,
        _refused("The tenant is named twice", {"tenant_id"}),
        "the body's tenant_id, when sent with x-tenantid, must name the same tenant",
    ),
    Exemption(
        (ACCEPT_INVITATION,),
        401,
        _code("INVALID_INVITATION"),
        "issue 12: a token must be a pending invitation's (one answer for unknown, used, voided and expired)",
    ),
    Exemption(
        (V1_CHANGE_STATUS,),
        400,
        _v1_refused({"status", *V1_MEMBERS}),
        "seed 000: a status is one of the tenant's ticket type's workflow states, reachable from the ticket's "
        "current one, with the data its guard asks for (the facility type's COMPLETED needs notes)",
    ),
    Exemption(
        (V1_UPDATE,),
        400,
        _v1_refused(V1_MEMBERS),
        "seed 001: values are checked against the fields of the tenant's ticket type (categories, the title's "
        "length, attachment URLs; required fields are not cleared)",
    ),
    Exemption(V1_WRITES, 422, _v1_code("IDEMPOTENCY_KEY_REUSED"), "issue 9 on the v1 writes, in the seeds' envelope"),
    Exemption(
        V1_PLATFORM_WRITES,
        422,
        lambda case, body: (
            isinstance(body.get("error"), dict) and body["error"].get("code") == "idempotency_key_reused"
        ),
        "issue 9 on seed 004's writes, in its envelope",
    ),
    Exemption(
        (V1_CREATE, V1_PATCH, V1_COMMENT),
        422,
        _platform_error("validation_error", lambda field: True),
        "seed 004: values are checked against the tenant's ticket type (its fields' schemas, custom_fields by key), "
        "its workflow, the files' types and the comment's text once sanitised",
    ),
    Exemption(
        (V1_CREATE,),
        400,
        _platform_error("invalid_input", lambda field: field.startswith("custom_fields.")),
        "seed 004: custom_fields are the tenant's ticket type's other fields, by key",
    ),
    Exemption(
        (V1_SIGN_IN,),
        400,
        _platform_error("invalid_input", lambda field: field in ("tenant_id", "x-tenantid")),
        "the tenant is named once (x-tenantid or tenant_id, the same) or, unnamed, is the one with a builtin realm",
    ),
    Exemption(
        V1_STATE_WRITES,
        422,
        lambda case, body: isinstance(body.get("error"), str) and bool(V1_STATE_RULE.match(body["error"])),
        "seed 003: names unique in the tenant, next_state_id an active other state, one default of each kind, "
        "states that tickets, states or workflows refer to kept",
    ),
    Exemption(
        V1_STATE_WRITES,
        422,
        lambda case, body: body.get("error") == "This Idempotency-Key was already used with a different request body",
        "issue 9 on seed 003's writes, in its envelope",
    ),
    Exemption(
        (DELETE_TICKET,),
        412,
        _code("PRECONDITION_FAILED"),
        "issue 10: an If-Match naming an etag the ticket does not have is 412 (RFC 9110, over stored data)",
    ),
)


def _json(response: Any) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _exempt(case: Any, status: int, body: dict[str, Any]) -> bool:
    return any(
        case.operation.label in exemption.operations and status == exemption.status and exemption.matches(case, body)
        for exemption in EXEMPTIONS
    )


@schemathesis.check
def positive_data_acceptance_but_business_rules(ctx: Any, response: Any, case: Any) -> bool | None:
    """positive_data_acceptance, except the refusals EXEMPTIONS names for the operation."""
    try:
        return builtin.positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        if _exempt(case, response.status_code, _json(response)):
            return None
        raise


# What uvicorn answers, before the application sees anything, to bytes that are not an HTTP request (a header line
# without a name, an empty Content-Length): not an answer of the API, so not one its document describes.
NOT_HTTP = b"Invalid HTTP request received."


@schemathesis.check
def content_type_conformance_but_not_http(ctx: Any, response: Any, case: Any) -> bool | None:
    """content_type_conformance, except the HTTP server's own refusal of a request that is not HTTP."""
    if response.status_code == 400 and response.content == NOT_HTTP:
        return None
    return builtin.content_type_conformance(ctx, response, case)


@schemathesis.check
def missing_required_header_but_tenant(ctx: Any, response: Any, case: Any) -> bool | None:
    """missing_required_header, except the tenant header: seed 002, note 7, "The x-tenantid header and the tenant_id
    claim inside the JWT must agree. Mismatches return 404 Tenant not found." A missing header agrees with no claim,
    so it is that 404, exactly; every other missing header is judged by the built-in check."""
    try:
        return builtin.missing_required_header(ctx, response, case)
    except MissingHeaderNotRejected as failure:
        if failure.header_name.lower() != "x-tenantid":
            raise
        assert (response.status_code, _json(response)) == (404, TENANT_NOT_FOUND), response.content
        return None


@schemathesis.check
def use_after_free_but_archive(ctx: Any, response: Any, case: Any) -> bool | None:
    """use_after_free, except DELETE of a ticket type, which archives it (README: "archive (never a hard delete)"):
    the type stays readable, marked archived, because its tickets and their display-ID prefix live on; and DELETE of
    a user, which deactivates it: tickets still name the user."""
    try:
        return builtin.use_after_free(ctx, response, case)
    except UseAfterFree as failure:
        if failure.operation in (ARCHIVE_TYPE, DEACTIVATE_USER):
            return None
        raise
