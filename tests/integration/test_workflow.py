"""The status workflow through the real server: ticket types' workflows (transitions, guards, initial state) and
their checks, PATCH /ticket/{objectId}/status with its compare-and-swap and every bad input, and how workflows
keep the states they name from being renamed, deleted or (as initial states) deactivated."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from app.bootstrap import apply_tenants
from app.tenancy.model import StateSeed
from app.ticket.service import TIME_FORMAT
from tests.support import (
    ETAG_MISMATCH,
    STATE_HAS_REFERENCES,
    STATES,
    TICKETS,
    TYPES,
    TenantApi,
    TenantFactory,
    TenantSpec,
    by_name,
    create_type,
    editable,
    field_ids,
    invalid,
    list_states,
    new_definition,
    new_field,
)
from tests.support import ticket_not_found as not_found

CHANGED = {"success": True, "message": "ticket status changed successfully", "status": 200}
FACILITY_WORKFLOW = {
    "initialState": "PENDING",
    "transitions": {"PENDING": ["IN_PROGRESS", "CANCELLED"], "IN_PROGRESS": ["COMPLETED", "CANCELLED"]},
    "guards": {
        "COMPLETED": {
            "description": "Completed work carries notes saying what was done.",
            "required": ["50338430-0c71-4038-a7fe-3060f77cb91d"],
        }
    },
}
NOTES = "50338430-0c71-4038-a7fe-3060f77cb91d"
BAD_BODY = "Invalid request body"
BAD_CHANGE = "Invalid ticket status change"


def status_path(object_id: str) -> str:
    return f"{TICKETS}/{object_id}/status"


async def change(api: TenantApi, object_id: str, body: Any) -> httpx.Response:
    return await api.http.patch(status_path(object_id), headers=api.headers, json=body)


async def facility_ticket(api: TenantApi, **data: Any) -> dict[str, Any]:
    """A new FAC ticket's GET document."""
    fac = await api.ticket_type("FAC")
    f = field_ids(fac)
    values = {f["category"]: "WATER", f["title"]: "Leak in room 12", **{f[k]: v for k, v in data.items()}}
    created = await api.create(fac["id"], values)
    assert created.status_code == 201, created.text
    return await document(api, created.json()["objectId"])


async def request_ticket(api: TenantApi) -> dict[str, Any]:
    req = await api.ticket_type("REQ")
    created = await api.create(req["id"], {field_ids(req)["title"]: "Printer"})
    assert created.status_code == 201, created.text
    return await document(api, created.json()["objectId"])


async def document(api: TenantApi, object_id: str) -> dict[str, Any]:
    response = await api.get(object_id)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def state_ids(api: TenantApi) -> dict[str, str]:
    return {state["name"]: state["id"] for state in await list_states(api)}


async def moved(api: TenantApi, ticket: dict[str, Any], state: str, **extra: Any) -> dict[str, Any]:
    """Change the ticket's state (asserting success) and return its new GET document."""
    response = await change(api, ticket["object_id"], {"etag": ticket["etag"], "state": state, **extra})
    assert response.status_code == 200, response.text
    after = await document(api, ticket["object_id"])
    # The answer names the state the ticket is now in, as GET does.
    named_state = {key: after[key] for key in ("state_id", "state_name", "state_type")}
    assert response.json() == {**CHANGED, "etag": after["etag"], **named_state}
    assert after["etag"] != ticket["etag"]
    return after


def later(**delta: float) -> str:
    return (datetime.datetime.now(datetime.UTC) + datetime.timedelta(**delta)).isoformat()


# --- the facility template's workflow (seed 000) ------------------------------------------------------------------


async def test_facility_template_carries_seed_000_workflow(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    fac = await TenantApi.agent(client, alpha).ticket_type("FAC")
    assert fac["workflow"] == FACILITY_WORKFLOW
    req = await TenantApi.agent(client, alpha).ticket_type("REQ")
    assert req["workflow"] is None


async def test_new_tickets_start_in_the_types_initial_state_or_the_tenants_default(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    ids = await state_ids(agent)
    default_create = next(s["id"] for s in await list_states(agent) if s["default_create"] and s["active"])
    assert (await facility_ticket(agent))["state_id"] == ids["PENDING"]
    assert (await request_ticket(agent))["state_id"] == default_create == ids["new"]


async def test_allowed_transitions_by_name_in_any_case_and_by_id(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    ids = await state_ids(agent)
    ticket = await facility_ticket(agent, notes="replaced the seal")
    ticket = await moved(agent, ticket, "in_progress", note="technician on site")
    assert ticket["state_id"] == ids["IN_PROGRESS"]
    assert (ticket["updated_by"], ticket["pending_until"]) == ("agent-1", None)
    ticket = await moved(agent, ticket, ids["COMPLETED"])
    assert ticket["state_id"] == ids["COMPLETED"]


async def test_refused_transition_names_the_allowed_next_states_and_changes_nothing(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    states = await list_states(agent)
    ticket = await facility_ticket(agent, notes="ready")
    response = await change(agent, ticket["object_id"], {"etag": ticket["etag"], "state": "COMPLETED"})
    assert (response.status_code, response.json()) == (
        400,
        {
            "error": True,
            "code": "TRANSITION_NOT_ALLOWED",
            "message": "A ticket in 'PENDING' cannot move to 'COMPLETED'",
            "status": 400,
            "allowedNextStates": [
                {"id": s["id"], "name": s["name"]} for s in states if s["name"] in ("IN_PROGRESS", "CANCELLED")
            ],
        },
    )
    assert await document(agent, ticket["object_id"]) == ticket
    # Completed and cancelled are ends: nothing may follow them.
    cancelled = await moved(agent, ticket, "CANCELLED")
    response = await change(agent, ticket["object_id"], {"etag": cancelled["etag"], "state": "PENDING"})
    assert response.status_code == 400
    assert (response.json()["code"], response.json()["allowedNextStates"]) == ("TRANSITION_NOT_ALLOWED", [])


async def test_moving_to_the_current_state_is_not_a_transition(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await request_ticket(agent)
    response = await change(agent, ticket["object_id"], {"etag": ticket["etag"], "state": "new"})
    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["message"]) == ("TRANSITION_NOT_ALLOWED", "A ticket in 'new' cannot move to 'new'")
    assert "new" not in {s["name"] for s in body["allowedNextStates"]}
    assert await document(agent, ticket["object_id"]) == ticket


async def test_without_a_workflow_any_active_state_may_follow_any_other(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    ids = await state_ids(agent)
    ticket = await request_ticket(agent)
    for name in ("closed", "open", "COMPLETED", "new"):
        ticket = await moved(agent, ticket, name)
        assert ticket["state_id"] == ids[name]


async def test_guard_names_the_missing_fields_and_a_cleared_field_does_not_count(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await moved(agent, await facility_ticket(agent), "IN_PROGRESS")
    refused = invalid(
        "The ticket cannot enter 'COMPLETED' yet", {NOTES: "required before a ticket may enter 'COMPLETED'"}
    )
    response = await change(agent, ticket["object_id"], {"etag": ticket["etag"], "state": "COMPLETED"})
    assert (response.status_code, response.json()) == (400, refused)
    cleared = await agent.update(ticket["object_id"], {"etag": ticket["etag"], "ticketUpdate": {NOTES: ""}})
    assert cleared.status_code == 200, cleared.text
    ticket = await document(agent, ticket["object_id"])
    response = await change(agent, ticket["object_id"], {"etag": ticket["etag"], "state": "COMPLETED"})
    assert (response.status_code, response.json()) == (400, refused)
    assert await document(agent, ticket["object_id"]) == ticket
    noted = await agent.update(ticket["object_id"], {"etag": ticket["etag"], "ticketUpdate": {NOTES: "fixed"}})
    assert noted.status_code == 200, noted.text
    completed = await moved(agent, await document(agent, ticket["object_id"]), "COMPLETED")
    assert completed["data"][NOTES] == "fixed"


async def test_a_guard_with_a_value_schema_reports_the_field(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    amount = new_field("amount", {"type": "integer"})
    definition = new_definition(amount)
    definition["workflow"] = {
        "guards": {"closed": {"required": [amount["id"]], "properties": {amount["id"]: {"minimum": 100}}}}
    }
    created = await create_type(client, admin, definition)
    ticket = await admin.create(created["id"], {amount["id"]: 5})
    assert ticket.status_code == 201, ticket.text
    current = await document(admin, ticket.json()["objectId"])
    response = await change(admin, current["object_id"], {"etag": current["etag"], "state": "closed"})
    assert (response.status_code, response.json()) == (
        400,
        invalid("The ticket cannot enter 'closed' yet", {amount["id"]: "5 is less than the minimum of 100"}),
    )
    # Other states are not guarded.
    await moved(admin, current, "open")


# --- the compare-and-swap -----------------------------------------------------------------------------------------


async def test_a_stale_etag_is_refused_before_anything_else(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await facility_ticket(agent)
    current = await moved(agent, ticket, "IN_PROGRESS")
    for state in ("CANCELLED", "PENDING", "no such state"):
        response = await change(agent, ticket["object_id"], {"etag": ticket["etag"], "state": state})
        assert (response.status_code, response.json()) == (400, ETAG_MISMATCH)
    response = await change(agent, ticket["object_id"], {"etag": "not-an-etag", "state": "CANCELLED"})
    assert (response.status_code, response.json()) == (400, ETAG_MISMATCH)
    assert await document(agent, ticket["object_id"]) == current


async def test_an_update_after_a_status_change_needs_the_new_etag(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await request_ticket(agent)
    current = await moved(agent, ticket, "open")
    title = field_ids(await agent.ticket_type("REQ"))["title"]
    stale = await agent.update(ticket["object_id"], {"etag": ticket["etag"], "ticketUpdate": {title: "x"}})
    assert (stale.status_code, stale.json()) == (400, ETAG_MISMATCH)
    assert await document(agent, ticket["object_id"]) == current


# --- pending states -----------------------------------------------------------------------------------------------


async def test_pending_states_need_a_future_time_and_others_refuse_one(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await request_ticket(agent)
    cases = [
        ("pending close", {}, "required for the pending close state 'pending close': when the wait ends"),
        ("pending reminder", {}, "required for the pending reminder state 'pending reminder': when the wait ends"),
        ("pending close", {"pendingUntil": later(minutes=-1)}, "must be in the future"),
        ("open", {"pendingUntil": later(hours=1)}, "only for pending states; 'open' is a open state"),
    ]
    for state, extra, problem in cases:
        response = await change(agent, ticket["object_id"], {"etag": ticket["etag"], "state": state, **extra})
        assert (response.status_code, response.json()) == (400, invalid(BAD_BODY, {"pendingUntil": problem}))
    assert await document(agent, ticket["object_id"]) == ticket
    due = later(hours=2)
    reminded = await moved(agent, ticket, "pending reminder", pendingUntil=due)
    assert datetime.datetime.fromisoformat(reminded["pending_until"]) == datetime.datetime.fromisoformat(due)
    reopened = await moved(agent, reminded, "open")
    assert reopened["pending_until"] is None


# --- bad input ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message", "reason"),
    [
        (
            {},
            BAD_BODY,
            {
                "etag": "required: the ticket's current etag (from GET, create or the previous change)",
                "state": "required: the id or name of the state to move to",
            },
        ),
        (
            {"state": "open"},
            BAD_BODY,
            {"etag": "required: the ticket's current etag (from GET, create or the previous change)"},
        ),
        ({"ETAG": "", "state": "open"}, None, None),
        ({"note": "x" * 2001, "state": "open", "etag": "ETAG"}, BAD_BODY, {"note": "at most 2000 characters"}),
        (
            {"note": "a\u0000b", "state": "open", "etag": "ETAG"},
            BAD_BODY,
            {"note": "text may not contain the NUL character (\\u0000)"},
        ),
        (
            {"state": "pending close", "etag": "ETAG", "pendingUntil": "2030-01-01T00:00:00"},
            BAD_BODY,
            {"pendingUntil": TIME_FORMAT},
        ),
        (
            {"state": "no such state", "etag": "ETAG"},
            BAD_CHANGE,
            {"state": "no ticket state of this tenant has this id or name"},
        ),
        (
            {"state": str(uuid.uuid4()), "etag": "ETAG"},
            BAD_CHANGE,
            {"state": "no ticket state of this tenant has this id or name"},
        ),
        ({"state": "removed", "etag": "ETAG"}, BAD_CHANGE, {"state": "the state 'removed' is not active"}),
        ({"state": 7, "etag": "ETAG"}, None, None),
        (["open"], None, None),
    ],
    ids=[
        "empty",
        "no etag",
        "unknown member",
        "long note",
        "NUL in note",
        "naive pendingUntil",
        "unknown state",
        "unknown state id",
        "inactive state",
        "state not a string",
        "not an object",
    ],
)
async def test_bad_status_bodies_are_refused_and_change_nothing(
    client: httpx.AsyncClient, alpha: TenantSpec, body: Any, message: str | None, reason: dict[str, str] | None
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await request_ticket(agent)
    if isinstance(body, dict) and body.get("etag") == "ETAG":
        body = {**body, "etag": ticket["etag"]}
    response = await change(agent, ticket["object_id"], body)
    assert response.status_code == 400, response.text
    if message is not None:
        assert response.json() == invalid(message, reason or {})
    else:
        assert response.json()["code"] == "INPUT_VALIDATION_FAILURE"
        assert response.json()["validationResult"]["reason"]
    assert await document(agent, ticket["object_id"]) == ticket


async def test_malformed_json_and_unknown_tickets(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await request_ticket(agent)
    malformed = await client.patch(
        status_path(ticket["object_id"]), headers={**agent.headers, "content-type": "application/json"}, content=b"{"
    )
    assert (malformed.status_code, malformed.json()["validationResult"]) == (
        400,
        {"reason": {"body": "not valid JSON"}},
    )
    for object_id in ("REQ-999999", "req-0001", "NOPE"):
        response = await change(agent, object_id, {"etag": ticket["etag"], "state": "open"})
        assert (response.status_code, response.json()) == (
            404,
            {"error": True, "message": f"Ticket not found ({object_id})"},
        )
    assert await document(agent, ticket["object_id"]) == ticket


# --- who may change a status --------------------------------------------------------------------------------------


async def test_another_tenants_ticket_status_is_out_of_reach(
    client: httpx.AsyncClient, alpha: TenantSpec, beta: TenantSpec
) -> None:
    # Who may call the status route at all: tests/integration/test_auth_matrix.py. Here: beta's own agent, sending
    # the right etag, does not see alpha's ticket at all.
    agent = TenantApi.agent(client, alpha)
    ticket = await request_ticket(agent)
    beta_agent = TenantApi.agent(client, beta)
    invisible = await change(beta_agent, ticket["object_id"], {"etag": ticket["etag"], "state": "open"})
    assert (invisible.status_code, invisible.json()) == (404, not_found(ticket["object_id"]))
    assert await document(agent, ticket["object_id"]) == ticket


# --- workflows in ticket-type definitions -------------------------------------------------------------------------


def with_workflow(workflow: dict[str, Any], *fields: dict[str, Any]) -> dict[str, Any]:
    definition = new_definition(*fields)
    definition["workflow"] = workflow
    return definition


async def test_a_custom_workflow_is_enforced_and_its_initial_state_used(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    admin = TenantApi.admin(client, alpha)
    ids = await state_ids(admin)
    workflow = {"initialState": "open", "transitions": {"open": ["pending close", "closed"], "pending close": ["open"]}}
    created = await create_type(client, admin, with_workflow(workflow))
    assert created["workflow"] == workflow
    title = created["fields"][0]["id"]
    response = await admin.create(created["id"], {title: "custom"})
    ticket = await document(admin, response.json()["objectId"])
    assert ticket["state_id"] == ids["open"]
    refused = await change(admin, ticket["object_id"], {"etag": ticket["etag"], "state": "new"})
    assert refused.json()["allowedNextStates"] == [
        {"id": s["id"], "name": s["name"]} for s in await list_states(admin) if s["name"] in ("closed", "pending close")
    ]
    waiting = await moved(admin, ticket, "PENDING CLOSE", pendingUntil=later(days=1))
    assert waiting["state_id"] == ids["pending close"]


@pytest.mark.parametrize(
    ("workflow", "reason"),
    [
        (
            {"transitions": {"open": ["nowhere"]}},
            {"workflow.transitions.open": "no ticket state named 'nowhere' in this tenant"},
        ),
        ({"initialState": "nowhere"}, {"workflow.initialState": "no ticket state named 'nowhere' in this tenant"}),
        ({"initialState": "removed"}, {"workflow.initialState": "the state 'removed' is not active"}),
        ({"transitions": {"open": ["OPEN"]}}, {"workflow.transitions.open": "a state cannot follow itself"}),
        (
            {"initialState": "open", "transitions": {"closed": ["open"]}},
            {"workflow.initialState": "no transition leads out of the initial state: new tickets would be stuck"},
        ),
        (
            {"transitions": {"open": ["closed", "Closed"]}},
            {"workflow.transitions.open": "a next state is named twice (state names are case-insensitive)"},
        ),
        (
            {"transitions": {"open": ["closed"], "OPEN": ["new"]}},
            {"workflow.transitions.OPEN": "state named twice (state names are case-insensitive)"},
        ),
        (
            {"initialState": "open", "guards": {"Open": {"required": ["TITLE"]}}},
            {"workflow.guards.Open": "the initial state cannot have a guard: use the fields' `required` instead"},
        ),
        (
            {"guards": {"closed": {"required": ["00000000-0000-4000-8000-000000000000"]}}},
            {"workflow.guards.closed": "names fields this type does not have: 00000000-0000-4000-8000-000000000000"},
        ),
        (
            {"guards": {"closed": {"properties": {"TITLE": {"pattern": "(a)\\1"}}}}},
            {
                "workflow.guards.closed": "pattern '(a)\\\\1' is not supported: invalid escape sequence: \\1 "
                "(RE2: no backreferences or look-around)"
            },
        ),
        (
            {"guards": {"closed": {"$ref": "https://example.com/schema.json"}}},
            {
                "workflow.guards.closed": "$ref 'https://example.com/schema.json' is not supported: only references "
                "to this schema's $defs (#/$defs/name)"
            },
        ),
    ],
    ids=[
        "unknown target",
        "unknown initial",
        "inactive initial",
        "self transition",
        "initial dead end",
        "target twice",
        "source twice",
        "guard on initial",
        "guard on unknown field",
        "guard backreference",
        "guard remote ref",
    ],
)
async def test_bad_workflows_are_refused_naming_the_place(
    client: httpx.AsyncClient, alpha: TenantSpec, workflow: dict[str, Any], reason: dict[str, str]
) -> None:
    admin = TenantApi.admin(client, alpha)
    title = new_field("title", {"type": "string"})
    # TITLE stands for the title field's UUID, which each run makes anew.
    definition = with_workflow(json.loads(json.dumps(workflow).replace("TITLE", title["id"])), title)
    response = await client.post(TYPES, json=definition, headers=admin.headers)
    assert (response.status_code, response.json()) == (400, invalid("Invalid ticket type definition", reason))
    assert definition["prefix"] not in {t["prefix"] for t in await admin.ticket_types()}


@pytest.mark.parametrize(
    ("workflow", "reason"),
    [
        ({"guards": {"closed": []}}, {"workflow.guards[...]": "Expected `object`, got `array`"}),
        ({"transitions": {"open": "closed"}}, {"workflow.transitions[...]": "Expected `array`, got `str`"}),
        ({"states": ["open"]}, {"workflow": "Object contains unknown field `states`"}),
    ],
    ids=["guard not an object", "targets not a list", "unknown member"],
)
async def test_misshapen_workflows_are_refused_when_the_body_is_read(
    client: httpx.AsyncClient, alpha: TenantSpec, workflow: dict[str, Any], reason: dict[str, str]
) -> None:
    admin = TenantApi.admin(client, alpha)
    response = await client.post(TYPES, json=with_workflow(workflow), headers=admin.headers)
    assert (response.status_code, response.json()) == (400, invalid("The request failed validation", reason))


# --- states named by workflows ------------------------------------------------------------------------------------


async def test_a_state_named_by_a_workflow_keeps_its_name_and_cannot_be_deleted(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    admin = TenantApi.admin(client, alpha)
    name = "triage"
    created = await client.post(STATES, headers=admin.headers, json={"name": name, "state_type": "open"})
    assert created.status_code == 201, created.text
    state = created.json()
    definition = with_workflow({"initialState": name, "transitions": {name: ["closed"]}})
    ticket_type = await create_type(client, admin, definition)
    renamed = await client.put(f"{STATES}/{state['id']}", headers=admin.headers, json=editable(state, name=name + "x"))
    assert (renamed.status_code, renamed.json()) == (
        400,
        invalid(
            "Invalid ticket state",
            {
                "name": f"the workflow of ticket type {ticket_type['prefix']} names this state; "
                "change the workflow first"
            },
        ),
    )
    deactivated = await client.put(f"{STATES}/{state['id']}", headers=admin.headers, json=editable(state, active=False))
    assert (deactivated.status_code, deactivated.json()) == (
        400,
        invalid("Invalid ticket state", {"active": f"new tickets of type {ticket_type['prefix']} start in this state"}),
    )
    deleted = await client.delete(f"{STATES}/{state['id']}", headers=admin.headers)
    assert (deleted.status_code, deleted.json()) == (409, STATE_HAS_REFERENCES)
    assert await by_name(admin, name) == state
    # Only the name is protected: a note may change, and once the type is archived the state is free again.
    noted = await client.put(f"{STATES}/{state['id']}", headers=admin.headers, json=editable(state, note="triage"))
    assert noted.status_code == 200, noted.text
    archived = await client.delete(f"{TYPES}/{ticket_type['id']}", headers=admin.headers)
    assert archived.status_code == 200, archived.text
    assert (await client.delete(f"{STATES}/{state['id']}", headers=admin.headers)).status_code == 204


async def test_a_state_named_by_an_archived_type_with_tickets_stays_protected(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    admin = TenantApi.admin(client, alpha)
    name = "review"
    state = (await client.post(STATES, headers=admin.headers, json={"name": name, "state_type": "open"})).json()
    ticket_type = await create_type(client, admin, with_workflow({"transitions": {"new": [name], name: ["closed"]}}))
    title = ticket_type["fields"][0]["id"]
    assert (await admin.create(ticket_type["id"], {title: "still governed"})).status_code == 201
    assert (await client.delete(f"{TYPES}/{ticket_type['id']}", headers=admin.headers)).status_code == 200
    # Its tickets still move by its workflow, so the state it names keeps its name and stays.
    renamed = await client.put(f"{STATES}/{state['id']}", headers=admin.headers, json=editable(state, name=name + "x"))
    assert renamed.status_code == 400, renamed.text
    assert (await client.delete(f"{STATES}/{state['id']}", headers=admin.headers)).status_code == 409
    assert await by_name(admin, name) == state


async def test_a_new_workflow_must_name_the_states_the_types_tickets_are_in(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    admin = TenantApi.admin(client, alpha)
    definition = new_definition()
    created = await create_type(client, admin, definition)
    title = created["fields"][0]["id"]
    ticket = await admin.create(created["id"], {title: "waiting in new"})
    assert ticket.status_code == 201, ticket.text
    path = f"{TYPES}/{created['id']}"
    stranding = {**definition, "workflow": {"transitions": {"open": ["closed"]}}}
    response = await client.put(path, headers=admin.headers, json=stranding)
    reason = {
        "workflow.transitions": "tickets of this type are in states the workflow does not name, so they could "
        "never move: new"
    }
    assert (response.status_code, response.json()) == (400, invalid("Invalid ticket type definition", reason))
    assert (await client.get(path, headers=admin.headers)).json()["version"] == 1
    fitting = {**definition, "workflow": {"transitions": {"new": ["open"], "open": ["closed"]}}}
    response = await client.put(path, headers=admin.headers, json=fitting)
    assert (response.status_code, response.json()["version"]) == (200, 2)


async def test_a_state_id_wins_over_a_state_named_like_an_id(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    ids = await state_ids(admin)
    impostor = await client.post(STATES, headers=admin.headers, json={"name": ids["open"], "state_type": "open"})
    assert impostor.status_code == 201, impostor.text
    ticket = await moved(admin, await request_ticket(admin), ids["open"])
    assert ticket["state_id"] == ids["open"]


async def test_seeding_skips_a_template_whose_workflow_does_not_fit_and_leaves_nothing_behind(
    database_url: str, tenant_factory: TenantFactory
) -> None:
    delta = tenant_factory.spec("delta")
    [config] = tenant_factory.configs(delta)
    # The tenant's own states: PENDING, where the facility template's tickets would start, is inactive.
    states = (
        StateSeed(name="new", state_type="new", default_create=True),
        StateSeed(name="open", state_type="open", default_follow_up=True),
        StateSeed(name="PENDING", state_type="new", active=False),
    )
    config = msgspec.structs.replace(config, states=states)
    _, seeded = await apply_tenants(database_url, [config], disable_missing=False)
    await tenant_factory.known(delta)  # no server is left to reload its tenants while the next test runs
    assert seeded == [f"{delta.slug}:REQ"]
    connection = await asyncpg.connect(database_url)
    try:
        names = await connection.fetch("SELECT name FROM ticket_state WHERE tenant_id = $1 ORDER BY name", delta.id)
        prefixes = await connection.fetch("SELECT prefix FROM ticket_type WHERE tenant_id = $1", delta.id)
    finally:
        await connection.close()
    # The states the template would have brought (IN_PROGRESS, COMPLETED, CANCELLED) were rolled back with it.
    assert [row["name"] for row in names] == ["PENDING", "new", "open"]
    assert [row["prefix"] for row in prefixes] == ["REQ"]
