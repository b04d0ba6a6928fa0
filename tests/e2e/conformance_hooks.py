"""Schemathesis hooks for tests/e2e/test_openapi_conformance.py (loaded by Schemathesis through SCHEMATHESIS_HOOKS).

Three built-in checks conflict with fixed parts of the contract for a few, named cases. For each, the run excludes
the built-in check and registers the wrapper below instead: the wrapper runs the built-in check and lets through
exactly the named case (asserting its contract answer where it has one), so every other request is judged as
strictly as before.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from schemathesis.openapi.checks import MissingHeaderNotRejected, RejectedPositiveData, UseAfterFree
from schemathesis.specs.openapi import checks as builtin

from app.ticket import listing
from tests.support import TENANT_NOT_FOUND

API = "/api/v2/ticketing"
INVALID = "INPUT_VALIDATION_FAILURE"
# The rules of ticket-state names and notes, which the document states: a refusal naming them is not a business rule.
STATE_FORMAT_REASONS = {"1 to 100 characters, without leading or trailing spaces", "at most 2000 characters"}
AS_OF_REASONS = {
    "use either asOf or asOfEtag, not both",
    "an ISO 8601 timestamp with a time zone, in the years 1 to 9999 in UTC, e.g. 2026-11-22T18:00:00Z",
}


def _update_ticket(body: dict[str, Any]) -> bool:
    # Seed 002, "Error Responses": "400 Bad Request ETAG_MISMATCH: The ticket has been modified since the caller
    # fetched it" and "400 Bad Request INPUT_VALIDATION_FAILURE: One or more field values failed validation. The
    # validationResult.reason map names the offending field UUIDs". A well-formed body with a stale etag, or with
    # values the ticket type's field schemas refuse, is a 400 by contract.
    return body.get("code") == "ETAG_MISMATCH" or (
        body.get("code") == INVALID and body.get("message") == "Ticket update failed validation"
    )


def _change_status(body: dict[str, Any]) -> bool:
    # The same compare-and-swap (a stale etag is seed 002's 400 ETAG_MISMATCH), then the tenant's states, the type's
    # workflow and guards, and the pending time of the target state: rules over stored data, not over the request.
    message = str(body.get("message", ""))
    reason = body.get("validationResult", {}).get("reason", {})
    return body.get("code") in ("ETAG_MISMATCH", "TRANSITION_NOT_ALLOWED") or (
        body.get("code") == INVALID
        and (
            message == "Invalid ticket status change"
            or message.startswith("The ticket cannot enter ")
            or (message == "Invalid request body" and set(reason) == {"pendingUntil"})
        )
    )


def _create_ticket(body: dict[str, Any]) -> bool:
    # `data` is checked against the chosen ticket type's field schemas, and ticketTypeId must be an active type of the
    # tenant: per-tenant, per-type rules (seed 002's INPUT_VALIDATION_FAILURE naming the field UUIDs).
    return body.get("code") == INVALID and body.get("message") in (
        "Invalid ticket type",
        "Ticket data failed validation",
    )


def _show_ticket(body: dict[str, Any]) -> bool:
    # asOf and asOfEtag exclude each other, and asOf must fall in the years 1 to 9999 in UTC: no OpenAPI parameter
    # can say either.
    reason = body.get("validationResult", {}).get("reason", {})
    return body.get("code") == INVALID and reason.keys() == {"asOf"} and reason["asOf"] in AS_OF_REASONS


def _list_tickets(body: dict[str, Any]) -> bool:
    # A state is one of the tenant's, a sorted field one of its ticket types' fields, and a time RFC 3339 within the
    # years 1 to 9999 in UTC: rules over the tenant's data, or beyond what a format can say.
    reason = body.get("validationResult", {}).get("reason", {})
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


def _ticket_type_definition(body: dict[str, Any]) -> bool:
    # Beyond schemas/ticket-type.schema.json (the document's schema): each field schema must itself be a valid, safe
    # JSON Schema, field ids and keys unique, defaults valid, the prefix free and unchanged, the workflow's states
    # those of the tenant, and an archived type unchanged.
    return body.get("code") == INVALID and body.get("message") in (
        "Invalid ticket type definition",
        "Ticket type is archived",
    )


def _ticket_state(body: dict[str, Any]) -> bool:
    # Names unique in the tenant, next_state_id an active other state, the tenant's default states kept: rules over the
    # tenant's other states.
    reason = body.get("validationResult", {}).get("reason", {})
    return (
        body.get("code") == INVALID
        and body.get("message") in ("Invalid ticket state", "Invalid ticket state change")
        and not STATE_FORMAT_REASONS & set(reason.values())
    )


# Operations whose 400 for a schema-valid request is a rule the document cannot state, and which 400 bodies are that.
REFUSED_FOR_BUSINESS_RULES = {
    f"PATCH {API}/ticket/{{object_id}}/update": _update_ticket,
    f"PATCH {API}/ticket/{{object_id}}/status": _change_status,
    f"POST {API}/ticket": _create_ticket,
    f"GET {API}/ticket/{{object_id}}": _show_ticket,
    f"GET {API}/ticket": _list_tickets,
    f"POST {API}/ticket-type": _ticket_type_definition,
    f"PUT {API}/ticket-type/{{type_id}}": _ticket_type_definition,
    f"POST {API}/ticket-state": _ticket_state,
    f"PUT {API}/ticket-state/{{state_id}}": _ticket_state,
    f"DELETE {API}/ticket-state/{{state_id}}": _ticket_state,
}


def _json(response: Any) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# Operations taking an Idempotency-Key: generated requests reuse keys, and a key sent again with another request is
# 422 IDEMPOTENCY_KEY_REUSED (issue 9: "a different body under the same key refused with 422"), a conflict with an
# earlier request like the 409 the built-in check already accepts.
TAKING_IDEMPOTENCY_KEYS = {
    f"POST {API}/ticket",
    f"PATCH {API}/ticket/{{object_id}}/update",
    f"PATCH {API}/ticket/{{object_id}}/status",
}


def _refused_by_rule(operation: str, status: int, body: dict[str, Any]) -> bool:
    if status == 400:
        allowed = REFUSED_FOR_BUSINESS_RULES.get(operation)
        return allowed is not None and allowed(body)
    if status == 422:
        return operation in TAKING_IDEMPOTENCY_KEYS and body.get("code") == "IDEMPOTENCY_KEY_REUSED"
    return False


@schemathesis.check
def positive_data_acceptance_but_business_rules(ctx: Any, response: Any, case: Any) -> bool | None:
    """positive_data_acceptance, except the refusals _refused_by_rule names for the operation."""
    try:
        return builtin.positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        if _refused_by_rule(case.operation.label, response.status_code, _json(response)):
            return None
        raise


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
    the type stays readable, marked archived, because its tickets and their display-ID prefix live on."""
    try:
        return builtin.use_after_free(ctx, response, case)
    except UseAfterFree as failure:
        if failure.operation == f"DELETE {API}/ticket-type/{{type_id}}":
            return None
        raise
