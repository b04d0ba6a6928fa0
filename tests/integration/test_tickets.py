"""The ticket API through the real server, body by body: create, read (ETag/304), the etag compare-and-swap update
of seed 002 with every way it can be refused, the event log, listing, and tenant isolation of tickets and ticket
types. Who may call which route is tests/integration/test_auth_matrix.py's."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from app.ticket.listing import FIELD_FORMAT
from tests.support import (
    CATALOG,
    ETAG_MISMATCH,
    MALFORMED_JSON,
    TICKETS,
    TYPES,
    UPDATED,
    TenantApi,
    TenantSpec,
    by_name,
    create_type,
    field_ids,
    invalid,
    named,
    new_definition,
    new_field,
    new_ticket,
    timestamp,
    token,
    type_not_found,
)
from tests.support import ticket_not_found as not_found

TICKET_KEYS = {
    "etag",
    "id",
    "object_id",
    "ticket_type_id",
    "ticket_type_version",
    "state_id",
    "state_name",
    "state_type",
    "pending_until",
    "data",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "lastUpdatedBy",
    "assignee",
}
UPDATE_FAILED = "Ticket update failed validation"
CREATE_FAILED = "Ticket data failed validation"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def request_type(client: httpx.AsyncClient, alpha: TenantSpec) -> dict[str, Any]:
    return await TenantApi.agent(client, alpha).ticket_type("REQ")


@pytest.fixture
def f(request_type: dict[str, Any]) -> dict[str, str]:
    """REQ field key -> field UUID."""
    return field_ids(request_type)


async def read(api: TenantApi, object_id: str) -> dict[str, Any]:
    response = await api.get(object_id)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def events(db: asyncpg.Connection, ticket_id: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT kind, changes::text AS changes, actor, request_id, support, etag FROM ticket_event "
        "WHERE ticket_id = $1 ORDER BY id",
        uuid.UUID(ticket_id),
    )
    return [{**dict(row), "changes": json.loads(row["changes"]), "etag": str(row["etag"])} for row in rows]


# ---------------------------------------------------------------------------------------------------------------
# create


async def test_create_answers_201_with_the_contract_body(
    client: httpx.AsyncClient, alpha: TenantSpec, request_type: dict[str, Any], f: dict[str, str]
) -> None:
    agent = TenantApi.agent(client, alpha)
    response = await agent.create(request_type["id"], {f["title"]: "Printer on fire"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body == {
        "success": True,
        "message": "ticket created successfully",
        "status": 201,
        "objectId": body["objectId"],
        "id": body["id"],
        "etag": body["etag"],
        # Additions to the contract's body: the state the ticket starts in.
        **named(await by_name(agent, "new")),
    }
    assert list(body) == [
        "success", "message", "status", "objectId", "id", "etag", "state_id", "state_name", "state_type",
    ]  # fmt: skip
    assert body["objectId"] == "REQ-0001"  # the tenant's first REQ ticket
    assert uuid.UUID(body["id"]) and uuid.UUID(body["etag"])
    assert response.headers["etag"] == f'"{body["etag"]}"'
    shown = await read(agent, body["objectId"])
    assert (shown["id"], shown["etag"], shown["object_id"]) == (body["id"], body["etag"], body["objectId"])


async def test_display_ids_are_consecutive_per_prefix(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    definition = new_definition()
    created = await create_type(client, admin, definition)
    title = definition["fields"][0]["id"]
    ids = [(await new_ticket(admin, created["id"], {title: f"n{i}"}))["objectId"] for i in range(3)]
    prefix = created["prefix"]
    assert ids == [f"{prefix}-0001", f"{prefix}-0002", f"{prefix}-0003"]


async def test_create_applies_defaults(
    client: httpx.AsyncClient, alpha: TenantSpec, request_type: dict[str, Any], f: dict[str, str]
) -> None:
    agent = TenantApi.agent(client, alpha)
    created = await new_ticket(agent, request_type["id"], {f["title"]: "Defaults"})
    assert (await read(agent, created["objectId"]))["data"] == {
        f["title"]: "Defaults",
        f["priority"]: "normal",
        f["tags"]: [],
        f["counter"]: 0,
        f["source"]: "api",
    }


async def test_create_keeps_sent_values_over_defaults_and_sets_read_only_fields(
    client: httpx.AsyncClient, alpha: TenantSpec, request_type: dict[str, Any], f: dict[str, str]
) -> None:
    agent = TenantApi.agent(client, alpha)
    data = {
        f["title"]: "All fields",
        f["description"]: "<p>Rich</p>",
        f["priority"]: "urgent",
        f["requester_email"]: "ada@example.com",
        f["due_date"]: "2030-01-31",
        f["tags"]: ["a", "b"],
        f["counter"]: 4,
        f["source"]: "email",  # read-only: settable at creation only
    }
    created = await new_ticket(agent, request_type["id"], data)
    assert (await read(agent, created["objectId"]))["data"] == data
    # A value sent empty is kept empty: the default is only for fields not sent.
    cleared = await new_ticket(agent, request_type["id"], {f["title"]: "Empty", f["priority"]: None, f["tags"]: []})
    data = (await read(agent, cleared["objectId"]))["data"]
    assert (data[f["priority"]], data[f["tags"]], data[f["source"]]) == (None, [], "api")


@pytest.mark.parametrize("title", ["missing", "", None, []])
async def test_create_enforces_required_fields(
    client: httpx.AsyncClient, alpha: TenantSpec, request_type: dict[str, Any], f: dict[str, str], title: Any
) -> None:
    data = {f["description"]: "no title"} if title == "missing" else {f["title"]: title}
    response = await TenantApi.agent(client, alpha).create(request_type["id"], data)
    assert response.status_code == 400
    assert response.json() == invalid(CREATE_FAILED, {f["title"]: "field is required"})


async def test_create_names_every_bad_field(
    client: httpx.AsyncClient, alpha: TenantSpec, request_type: dict[str, Any], f: dict[str, str]
) -> None:
    stranger = str(uuid.uuid4())
    data = {
        f["title"]: "x" * 201,
        f["counter"]: "seven",
        f["priority"]: "whenever",
        f["due_date"]: "tomorrow",
        f["source"]: "carrier pigeon",
        stranger: "?",
    }
    response = await TenantApi.agent(client, alpha).create(request_type["id"], data)
    assert response.status_code == 400
    reason = response.json()["validationResult"]["reason"]
    assert response.json() == invalid(CREATE_FAILED, reason)
    assert set(reason) == {f["title"], f["counter"], f["priority"], f["due_date"], f["source"], stranger}
    assert reason[stranger] == "unknown field for this ticket type"
    assert reason[f["counter"]] == "'seven' is not of type 'integer'"
    assert reason[f["title"]].endswith("is too long")
    assert reason[f["due_date"]] == "'tomorrow' does not match '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'"


@pytest.mark.parametrize("type_id", ["random", "beta's REQ"])
async def test_create_with_an_unknown_type_is_refused(
    client: httpx.AsyncClient, alpha: TenantSpec, beta: TenantSpec, type_id: str
) -> None:
    target = (
        str(uuid.uuid4()) if type_id == "random" else (await TenantApi.agent(client, beta).ticket_type("REQ"))["id"]
    )
    response = await TenantApi.agent(client, alpha).create(target, {})
    assert response.status_code == 400
    assert response.json() == invalid(
        "Invalid ticket type", {"ticketTypeId": "no active ticket type with this id in the tenant"}
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"data": {}}, {"body": "Object missing required field `ticketTypeId`"}),
        ({"ticketTypeId": "nope"}, {"ticketTypeId": "Invalid UUID"}),
        (
            {"ticketTypeId": "00000000-0000-4000-8000-000000000000", "extra": 1},
            {"body": "Object contains unknown field `extra`"},
        ),
        ([], {"body": "Expected `object`, got `array`"}),
    ],
)
async def test_create_body_shape_is_checked(
    client: httpx.AsyncClient, alpha: TenantSpec, body: Any, reason: dict[str, str]
) -> None:
    agent = TenantApi.agent(client, alpha)
    response = await client.post(TICKETS, params=CATALOG, json=body, headers=agent.headers)
    assert response.status_code == 400
    assert response.json() == invalid("The request failed validation", reason)


# ---------------------------------------------------------------------------------------------------------------
# read


async def test_get_returns_the_ticket_with_its_etag(
    client: httpx.AsyncClient, alpha: TenantSpec, request_type: dict[str, Any], f: dict[str, str]
) -> None:
    agent = TenantApi.agent(client, alpha, subject="agent-reader")
    created = await new_ticket(agent, request_type["id"], {f["title"]: "Shape", f["counter"]: 2})
    response = await agent.get(created["objectId"])
    assert response.status_code == 200
    body = response.json()
    states = (await client.get("/api/v2/ticketing/ticket-state", headers=agent.headers)).json()["data"]
    [initial_state] = [state for state in states if state["default_create"] and state["active"]]
    assert initial_state["name"] == "new"
    assert set(body) == TICKET_KEYS
    assert body == {
        "etag": created["etag"],
        "id": created["id"],
        "object_id": created["objectId"],
        "ticket_type_id": request_type["id"],
        "ticket_type_version": request_type["version"],
        "state_id": initial_state["id"],
        "state_name": "new",
        "state_type": "new",
        "pending_until": None,
        "data": {
            f["title"]: "Shape",
            f["counter"]: 2,
            f["priority"]: "normal",
            f["tags"]: [],
            f["source"]: "api",
        },
        "created_at": body["created_at"],
        "created_by": "agent-reader",
        "updated_at": body["created_at"],
        "updated_by": "agent-reader",
        "lastUpdatedBy": "agent-reader",
        "assignee": None,
    }
    timestamp(body["created_at"])
    assert response.headers["etag"] == f'"{created["etag"]}"'


@pytest.mark.parametrize("form", ['"{etag}"', "{etag}", 'W/"{etag}"', '"stale", "{etag}"', "*"])
async def test_if_none_match_with_the_current_etag_is_304(
    client: httpx.AsyncClient, alpha: TenantSpec, request_type: dict[str, Any], f: dict[str, str], form: str
) -> None:
    agent = TenantApi.agent(client, alpha)
    created = await new_ticket(agent, request_type["id"], {f["title"]: "Cached"})
    path = f"{TICKETS}/{created['objectId']}"
    response = await client.get(path, headers={**agent.headers, "if-none-match": form.format(etag=created["etag"])})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == f'"{created["etag"]}"'


async def test_if_none_match_with_an_old_etag_is_200(
    client: httpx.AsyncClient, alpha: TenantSpec, request_type: dict[str, Any], f: dict[str, str]
) -> None:
    agent = TenantApi.agent(client, alpha)
    created = await new_ticket(agent, request_type["id"], {f["title"]: "Changing"})
    done = await agent.update(created["objectId"], {"etag": created["etag"], "ticketUpdate": {f["counter"]: 1}})
    assert done.status_code == 200
    response = await client.get(
        f"{TICKETS}/{created['objectId']}", headers={**agent.headers, "if-none-match": f'"{created["etag"]}"'}
    )
    assert response.status_code == 200
    assert response.json()["etag"] == done.json()["etag"]
    assert response.headers["etag"] == f'"{done.json()["etag"]}"'


async def test_get_by_internal_uuid_is_404(
    client: httpx.AsyncClient, alpha: TenantSpec, request_type: dict[str, Any], f: dict[str, str]
) -> None:
    agent = TenantApi.agent(client, alpha)
    created = await new_ticket(agent, request_type["id"], {f["title"]: "By UUID"})
    response = await agent.get(created["id"])
    assert response.status_code == 404
    assert response.json() == not_found(created["id"])


@pytest.mark.parametrize("object_id", ["REQ-9999", "req-0001", "REQ-1", "NOPE-0001", "REQ-0001x"])
async def test_unknown_ticket_is_404(client: httpx.AsyncClient, alpha: TenantSpec, object_id: str) -> None:
    response = await TenantApi.agent(client, alpha).get(object_id)
    assert response.status_code == 404
    assert response.json() == not_found(object_id)


async def test_not_found_echoes_at_most_64_characters(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    object_id = "R" * 500
    response = await TenantApi.agent(client, alpha).get(object_id)
    assert response.status_code == 404
    assert response.json() == not_found("R" * 64)


# ---------------------------------------------------------------------------------------------------------------
# update: success


async def test_update_answers_the_contract_body_and_changes_only_sent_keys(
    client: httpx.AsyncClient, alpha: TenantSpec, request_type: dict[str, Any], f: dict[str, str]
) -> None:
    author = TenantApi.agent(client, alpha, subject="agent-author")
    editor = TenantApi.agent(client, alpha, subject="agent-editor")
    created = await new_ticket(author, request_type["id"], {f["title"]: "Before", f["tags"]: ["keep"]})
    before = await read(author, created["objectId"])
    response = await editor.update(
        created["objectId"],
        {"etag": created["etag"], "ticketUpdate": {f["description"]: "<p>Updated description text.</p>"}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # The contract's body, then the ticket's state (unchanged by an update).
    assert body == {**UPDATED, "etag": body["etag"], **named(await by_name(author, "new"))}
    assert list(body) == ["success", "message", "status", "etag", "state_id", "state_name", "state_type"]
    assert uuid.UUID(body["etag"]) and body["etag"] != created["etag"]

    after = await read(author, created["objectId"])
    assert after["etag"] == body["etag"]
    assert after["data"] == {**before["data"], f["description"]: "<p>Updated description text.</p>"}
    assert (after["created_by"], after["updated_by"], after["lastUpdatedBy"]) == (
        "agent-author",
        "agent-editor",
        "agent-editor",
    )
    assert after["created_at"] == before["created_at"]
    assert timestamp(after["updated_at"]) > timestamp(before["updated_at"])

    # The etag changes on every write: the new one works, the old one no longer does.
    again = await editor.update(created["objectId"], {"etag": body["etag"], "ticketUpdate": {f["counter"]: 9}})
    assert again.status_code == 200
    stale = await editor.update(created["objectId"], {"etag": body["etag"], "ticketUpdate": {f["counter"]: 10}})
    assert (stale.status_code, stale.json()) == (400, ETAG_MISMATCH)


@pytest.mark.parametrize("catalog", ["template", "agent", "user"])
async def test_every_catalog_type_is_accepted(
    client: httpx.AsyncClient, alpha: TenantSpec, request_type: dict[str, Any], f: dict[str, str], catalog: str
) -> None:
    agent = TenantApi.agent(client, alpha)
    created = await agent.create(request_type["id"], {f["title"]: "catalog"})
    response = await agent.update(
        created.json()["objectId"],
        {"etag": created.json()["etag"], "ticketUpdate": {f["counter"]: 1}},
        params={"type": catalog, "module": "ticketing"},
    )
    assert response.status_code == 200, response.text


async def test_empty_values_clear_optional_fields(
    client: httpx.AsyncClient, alpha: TenantSpec, request_type: dict[str, Any], f: dict[str, str]
) -> None:
    agent = TenantApi.agent(client, alpha)
    created = await new_ticket(
        agent,
        request_type["id"],
        {
            f["title"]: "Full",
            f["description"]: "text",
            f["due_date"]: "2030-01-01",
            f["tags"]: ["x"],
            f["requester_email"]: "a@b.co",
        },
    )
    clearing = {f["description"]: "", f["due_date"]: None, f["tags"]: [], f["requester_email"]: None}
    response = await agent.update(created["objectId"], {"etag": created["etag"], "ticketUpdate": clearing})
    assert response.status_code == 200, response.text
    data = (await read(agent, created["objectId"]))["data"]
    assert data == {
        f["title"]: "Full",
        f["priority"]: "normal",
        f["counter"]: 0,
        f["source"]: "api",
        **clearing,
    }


async def test_huge_value_in_a_field_without_max_length_is_stored(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    # Nothing limits a value but its schema and the 1 MiB body limit: 900 KB in an unbounded string field is fine.
    admin = TenantApi.admin(client, alpha)
    notes = new_field("notes", {"type": "string"})
    created = await create_type(client, admin, new_definition(notes))
    ticket = await new_ticket(admin, created["id"], {})
    huge = "n" * 900_000
    response = await admin.update(ticket["objectId"], {"etag": ticket["etag"], "ticketUpdate": {notes["id"]: huge}})
    assert response.status_code == 200, response.text[:200]
    assert (await read(admin, ticket["objectId"]))["data"] == {notes["id"]: huge}


async def test_concurrent_updates_with_one_etag_have_one_winner(
    client: httpx.AsyncClient,
    alpha: TenantSpec,
    request_type: dict[str, Any],
    f: dict[str, str],
    db: asyncpg.Connection,
) -> None:
    agent = TenantApi.agent(client, alpha)
    created = await new_ticket(agent, request_type["id"], {f["title"]: "Race"})
    responses = await asyncio.gather(
        *(
            agent.update(created["objectId"], {"etag": created["etag"], "ticketUpdate": {f["counter"]: n}})
            for n in range(1, 6)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 400, 400, 400, 400]
    assert all(r.json() == ETAG_MISMATCH for r in responses if r.status_code == 400)
    [winner] = [r for r in responses if r.status_code == 200]
    final = await read(agent, created["objectId"])
    assert final["etag"] == winner.json()["etag"]
    assert [e["kind"] for e in await events(db, created["id"])] == ["ticket.created", "ticket.updated"]


# ---------------------------------------------------------------------------------------------------------------
# update: refused


def _deep(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


REFUSED_UPDATES: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    # ticketUpdate built from field keys (or "?" for an unknown UUID) -> expected reason by field key
    "clear required with empty string": ({"title": ""}, {"title": "field is required and cannot be cleared"}),
    "clear required with null": ({"title": None}, {"title": "field is required and cannot be cleared"}),
    "clear required with empty list": ({"title": []}, {"title": "field is required and cannot be cleared"}),
    "unknown field": ({"?": "x"}, {"?": "unknown field for this ticket type"}),
    "wrong type": ({"counter": "x"}, {"counter": "'x' is not of type 'integer'"}),
    "below minimum": ({"counter": -1}, {"counter": "-1 is less than the minimum of 0"}),
    "title over 200": ({"title": "t" * 201}, {"title": "'" + "t" * 201 + "' is too long"}),
    "not in enum": ({"priority": "asap"}, {"priority": "'asap' is not one of ['low', 'normal', 'high', 'urgent']"}),
    "pattern": (
        {"requester_email": "nobody"},
        {"requester_email": "'nobody' does not match '^[^@\\\\s]+@[^@\\\\s]+\\\\.[^@\\\\s]+$'"},
    ),
    "duplicate tags": ({"tags": ["a", "a"]}, {"tags": "array items are not unique"}),
    "tag item wrong type": ({"tags": ["a", 1]}, {"tags": "[1]: 1 is not of type 'string'"}),
    "read-only field": ({"source": "web"}, {"source": "field is read-only"}),
    "read-only field cleared": ({"source": None}, {"source": "field is read-only"}),
    "depth 40 in tags": ({"tags": _deep(40)}, {"tags": "value nests deeper than 32 levels"}),
    "900 KB into a 20,000-character field": (
        {"description": "d" * 900_000},
        # Messages are cut in the middle to 300 characters: the quoted value's start and the verdict stay.
        {"description": "'" + "d" * 149 + "…" + "d" * 136 + "' is too long"},
    ),
    "several at once": (
        {"title": "", "counter": "x", "source": "web", "?": 1, "description": "fine"},
        {
            "title": "field is required and cannot be cleared",
            "counter": "'x' is not of type 'integer'",
            "source": "field is read-only",
            "?": "unknown field for this ticket type",
        },
    ),
}


@pytest.mark.parametrize("case", REFUSED_UPDATES.values(), ids=REFUSED_UPDATES.keys())
async def test_refused_update_names_each_offending_field_and_writes_nothing(
    client: httpx.AsyncClient,
    alpha: TenantSpec,
    request_type: dict[str, Any],
    f: dict[str, str],
    db: asyncpg.Connection,
    case: tuple[dict[str, Any], dict[str, str]],
) -> None:
    changes, expected = case
    ids = {**f, "?": str(uuid.uuid4())}
    agent = TenantApi.agent(client, alpha)
    created = await new_ticket(agent, request_type["id"], {f["title"]: "Refusals"})
    before = await read(agent, created["objectId"])
    response = await agent.update(
        created["objectId"], {"etag": created["etag"], "ticketUpdate": {ids[k]: v for k, v in changes.items()}}
    )
    assert response.status_code == 400, response.text[:300]
    reason = response.json()["validationResult"]["reason"]
    assert response.json() == invalid(UPDATE_FAILED, reason)
    assert set(reason) == {ids[k] for k in expected}
    assert reason == {ids[k]: message for k, message in expected.items()}
    assert await read(agent, created["objectId"]) == before
    assert [e["kind"] for e in await events(db, created["id"])] == ["ticket.created"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            {"ticketUpdate": {"k": 1}},
            {"etag": "required: the ticket's current etag (from GET, create or the previous update)"},
        ),
        ({"etag": "E"}, {"ticketUpdate": "required: a map of field UUID to new value"}),
        ({"etag": "E", "ticketUpdate": {}}, {"ticketUpdate": "must name at least one field"}),
        (
            {},
            {
                "etag": "required: the ticket's current etag (from GET, create or the previous update)",
                "ticketUpdate": "required: a map of field UUID to new value",
            },
        ),
        ({"etag": None, "ticketUpdate": None}, None),
    ],
    ids=["missing etag", "missing ticketUpdate", "empty ticketUpdate", "empty body", "explicit nulls"],
)
async def test_update_body_must_carry_etag_and_changes(
    client: httpx.AsyncClient,
    alpha: TenantSpec,
    request_type: dict[str, Any],
    f: dict[str, str],
    db: asyncpg.Connection,
    body: dict[str, Any],
    reason: dict[str, str] | None,
) -> None:
    agent = TenantApi.agent(client, alpha)
    created = await new_ticket(agent, request_type["id"], {f["title"]: "Body"})
    sent = {k: (created["etag"] if v == "E" else v) for k, v in body.items()}
    if sent.get("ticketUpdate"):
        sent["ticketUpdate"] = {f["counter"]: 1}
    response = await agent.update(created["objectId"], sent)
    assert response.status_code == 400
    if reason is None:  # nulls are as good as missing
        reason = {
            "etag": "required: the ticket's current etag (from GET, create or the previous update)",
            "ticketUpdate": "required: a map of field UUID to new value",
        }
    assert response.json() == invalid("Invalid request body", reason)
    assert (await read(agent, created["objectId"]))["etag"] == created["etag"]
    assert len(await events(db, created["id"])) == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"etag": "E", "ticketUpdate": {}, "extra": 1}, {"body": "Object contains unknown field `extra`"}),
        ({"etag": "E", "ticketUpdate": ["x"]}, {"ticketUpdate": "Expected `object | null`, got `array`"}),
        ({"etag": 5, "ticketUpdate": {}}, {"etag": "Expected `str | null`, got `int`"}),
        (["E"], {"body": "Expected `object`, got `array`"}),
    ],
    ids=["unknown member", "ticketUpdate not an object", "etag not a string", "body not an object"],
)
async def test_update_body_shape_is_checked(
    client: httpx.AsyncClient, alpha: TenantSpec, body: Any, reason: dict[str, str]
) -> None:
    response = await TenantApi.agent(client, alpha).update("REQ-0001", body)
    assert response.status_code == 400
    assert response.json() == invalid("The request failed validation", reason)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_malformed_json_body(client: httpx.AsyncClient, alpha: TenantSpec, method: str) -> None:
    agent = TenantApi.agent(client, alpha)
    path = TICKETS if method == "POST" else f"{TICKETS}/REQ-0001/update"
    response = await client.request(
        method,
        path,
        params=CATALOG,
        content=b'{"etag": ',
        headers={**agent.headers, "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json() == MALFORMED_JSON


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({}, {"type": "required; one of template, agent, user", "module": "required; a module name such as ticketing"}),
        ({"module": "ticketing"}, {"type": "required; one of template, agent, user"}),
        ({"type": "template"}, {"module": "required; a module name such as ticketing"}),
        ({"type": "catalog", "module": "ticketing"}, {"type": "required; one of template, agent, user"}),
        ({"type": "template", "module": "Ticketing!"}, {"module": "required; a module name such as ticketing"}),
        (
            {"type": "", "module": ""},
            {"type": "required; one of template, agent, user", "module": "required; a module name such as ticketing"},
        ),
    ],
)
@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_type_and_module_query_parameters_are_required(
    client: httpx.AsyncClient,
    alpha: TenantSpec,
    request_type: dict[str, Any],
    f: dict[str, str],
    db: asyncpg.Connection,
    method: str,
    params: dict[str, str],
    reason: dict[str, str],
) -> None:
    agent = TenantApi.agent(client, alpha)
    created = await new_ticket(agent, request_type["id"], {f["title"]: "Query"})
    if method == "POST":
        response = await client.post(
            TICKETS,
            params=params,
            json={"ticketTypeId": request_type["id"], "data": {f["title"]: "never"}},
            headers=agent.headers,
        )
    else:
        response = await agent.update(
            created["objectId"], {"etag": created["etag"], "ticketUpdate": {f["counter"]: 1}}, params=params
        )
    assert response.status_code == 400
    assert response.json() == invalid("Invalid query parameters", reason)
    assert (await read(agent, created["objectId"]))["etag"] == created["etag"]
    assert len(await events(db, created["id"])) == 1


async def test_stale_etag_is_the_contract_etag_mismatch(
    client: httpx.AsyncClient,
    alpha: TenantSpec,
    request_type: dict[str, Any],
    f: dict[str, str],
    db: asyncpg.Connection,
) -> None:
    agent = TenantApi.agent(client, alpha)
    created = await new_ticket(agent, request_type["id"], {f["title"]: "Stale"})
    for etag in (str(uuid.uuid4()), "not-a-uuid"):
        response = await agent.update(created["objectId"], {"etag": etag, "ticketUpdate": {f["counter"]: 1}})
        assert response.status_code == 400, etag
        assert response.json() == ETAG_MISMATCH
    # An empty etag is a missing one.
    empty = await agent.update(created["objectId"], {"etag": "", "ticketUpdate": {f["counter"]: 1}})
    assert (empty.status_code, list(empty.json()["validationResult"]["reason"])) == (400, ["etag"])
    assert (await read(agent, created["objectId"]))["etag"] == created["etag"]
    assert len(await events(db, created["id"])) == 1


@pytest.mark.parametrize("object_id", ["REQ-9999", "REQ-99999999", "NOPE-0001", "garbage"])
async def test_update_of_an_unknown_ticket_is_404(
    client: httpx.AsyncClient, alpha: TenantSpec, f: dict[str, str], object_id: str
) -> None:
    agent = TenantApi.agent(client, alpha)
    response = await agent.update(object_id, {"etag": str(uuid.uuid4()), "ticketUpdate": {f["counter"]: 1}})
    assert response.status_code == 404
    assert response.json() == not_found(object_id)


async def test_body_over_one_mebibyte_is_413(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    admin = TenantApi.admin(client, alpha)
    expected = {
        "error": True,
        "code": "PAYLOAD_TOO_LARGE",
        "message": "Request body is larger than the limit of 1048576 bytes",
        "status": 413,
    }
    body = json.dumps({"etag": "x", "ticketUpdate": {"k": "v" * (1024 * 1024)}}).encode()
    requests = [
        ("POST", TICKETS, agent.headers),
        ("PATCH", f"{TICKETS}/REQ-0001/update", agent.headers),
        ("POST", TYPES, admin.headers),
    ]
    for method, path, headers in requests:
        # One keep-alive client throughout: the server answers 413 at once and discards the rest of the body.
        response = await client.request(
            method, path, params=CATALOG, content=body, headers={**headers, "content-type": "application/json"}
        )
        assert response.status_code == 413, (method, path)
        assert response.json() == expected


@pytest.mark.parametrize("method", ["POST ticket", "PATCH ticket", "POST ticket-type"])
async def test_body_nested_thousands_deep_is_a_400(
    client: httpx.AsyncClient, alpha: TenantSpec, request_type: dict[str, Any], f: dict[str, str], method: str
) -> None:
    admin = TenantApi.admin(client, alpha)
    deep = b"[" * 5000 + b"]" * 5000
    if method == "POST ticket":
        path, verb = TICKETS, "POST"
        body = b'{"ticketTypeId": "%s", "data": {"%s": %s}}' % (request_type["id"].encode(), f["tags"].encode(), deep)
    elif method == "PATCH ticket":
        created = await new_ticket(admin, request_type["id"], {f["title"]: "deep"})
        path, verb = f"{TICKETS}/{created['objectId']}/update", "PATCH"
        body = b'{"etag": "%s", "ticketUpdate": {"%s": %s}}' % (created["etag"].encode(), f["tags"].encode(), deep)
    else:
        path, verb = TYPES, "POST"
        field = b'{"id": "%s", "key": "deep", "name": "Deep", "schema": {}, "default": %s}' % (
            str(uuid.uuid4()).encode(),
            deep,
        )
        body = b'{"name": "deep", "prefix": "DEEP", "fields": [%s]}' % field
    response = await client.request(
        verb, path, params=CATALOG, content=body, headers={**admin.headers, "content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INPUT_VALIDATION_FAILURE"


async def test_unique_items_check_is_not_quadratic(
    client: httpx.AsyncClient, alpha: TenantSpec, request_type: dict[str, Any], f: dict[str, str]
) -> None:
    agent = TenantApi.agent(client, alpha)
    created = await new_ticket(agent, request_type["id"], {f["title"]: "unique"})

    async def timed(count: int) -> float:
        # Mixed types cannot be sorted, which is what sends jsonschema to its pairwise comparison.
        tags = [i if i % 2 else str(i) for i in range(count)]
        started = time.perf_counter()
        response = await agent.update(created["objectId"], {"etag": created["etag"], "ticketUpdate": {f["tags"]: tags}})
        elapsed = time.perf_counter() - started
        assert response.status_code == 400
        assert set(response.json()["validationResult"]["reason"]) == {f["tags"]}
        return elapsed

    small = await timed(1000)
    large = await timed(6000)
    # Six times the items: at most about 6x the time if linear, 36x if quadratic.
    assert large < 12 * max(small, 0.05), (small, large)
    assert large < 2


# ---------------------------------------------------------------------------------------------------------------
# audit: who, the event log


async def test_service_account_is_recorded_under_its_own_subject(
    client: httpx.AsyncClient,
    alpha: TenantSpec,
    request_type: dict[str, Any],
    f: dict[str, str],
    db: asyncpg.Connection,
) -> None:
    human = TenantApi.agent(client, alpha, subject="agent-human")
    robot = TenantApi(client, alpha, token(alpha, roles=["agent"], subject="sa-tenant-x", client_id="billing-sync"))
    created = await new_ticket(human, request_type["id"], {f["title"]: "Robots"})
    response = await robot.update(created["objectId"], {"etag": created["etag"], "ticketUpdate": {f["counter"]: 1}})
    assert response.status_code == 200, response.text
    ticket = await read(human, created["objectId"])
    assert (ticket["created_by"], ticket["updated_by"], ticket["lastUpdatedBy"]) == (
        "agent-human",
        "sa-tenant-x",
        "sa-tenant-x",
    )
    assert [e["actor"] for e in await events(db, created["id"])] == ["agent-human", "sa-tenant-x"]

    by_robot = await new_ticket(robot, request_type["id"], {f["title"]: "Made by a robot"})
    made = await read(human, by_robot["objectId"])
    assert (made["created_by"], made["lastUpdatedBy"]) == ("sa-tenant-x", "sa-tenant-x")


async def test_update_event_records_changes_actor_request_id_and_support(
    client: httpx.AsyncClient,
    alpha: TenantSpec,
    request_type: dict[str, Any],
    f: dict[str, str],
    db: asyncpg.Connection,
) -> None:
    creator = TenantApi.agent(client, alpha, subject="agent-creator")
    create_id = "create-audited"
    response = await client.post(
        TICKETS,
        params=CATALOG,
        json={"ticketTypeId": request_type["id"], "data": {f["title"]: "Audited", f["tags"]: ["one"]}},
        headers={**creator.headers, "x-request-id": create_id},
    )
    assert response.status_code == 201
    created = response.json()

    supporter = TenantApi(client, alpha, token(alpha, roles=["agent", "support"], subject="support-1"))
    update_id = "update-audited"
    changes = {f["title"]: "Audited again", f["tags"]: [], f["counter"]: 0, f["description"]: "new"}
    response = await client.patch(
        f"{TICKETS}/{created['objectId']}/update",
        params=CATALOG,
        json={"etag": created["etag"], "ticketUpdate": changes},
        headers={**supporter.headers, "x-request-id": update_id, "issupportrequest": "true"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == update_id
    new_etag = response.json()["etag"]

    recorded = await events(db, created["id"])
    assert recorded == [
        {
            "kind": "ticket.created",
            "changes": {
                f["title"]: {"old": None, "new": "Audited"},
                f["tags"]: {"old": None, "new": ["one"]},
                f["priority"]: {"old": None, "new": "normal"},
                f["counter"]: {"old": None, "new": 0},
                f["source"]: {"old": None, "new": "api"},
            },
            "actor": "agent-creator",
            "request_id": create_id,
            "support": False,
            "etag": created["etag"],
        },
        {
            "kind": "ticket.updated",
            # counter was sent with its current value: not a change. description had no old value.
            "changes": {
                f["title"]: {"old": "Audited", "new": "Audited again"},
                f["tags"]: {"old": ["one"], "new": []},
                f["description"]: {"old": None, "new": "new"},
            },
            "actor": "support-1",
            "request_id": update_id,
            "support": True,
            "etag": new_etag,
        },
    ]


async def test_support_flag_needs_the_support_role(
    client: httpx.AsyncClient,
    alpha: TenantSpec,
    request_type: dict[str, Any],
    f: dict[str, str],
    db: asyncpg.Connection,
) -> None:
    agent = TenantApi.agent(client, alpha)
    created = await new_ticket(agent, request_type["id"], {f["title"]: "Not support"})
    response = await client.patch(
        f"{TICKETS}/{created['objectId']}/update",
        params=CATALOG,
        json={"etag": created["etag"], "ticketUpdate": {f["counter"]: 3}},
        headers={**agent.headers, "issupportrequest": "true"},
    )
    assert response.status_code == 200
    assert [e["support"] for e in await events(db, created["id"])] == [False, False]


# ---------------------------------------------------------------------------------------------------------------
# list


async def _typed_tickets(client: httpx.AsyncClient, alpha: TenantSpec, count: int) -> tuple[dict[str, Any], list[str]]:
    """A type of its own (so counts are exact) with `count` tickets; returns the type and the ticket object ids."""
    admin = TenantApi.admin(client, alpha)
    title = new_field("title", {"type": "string"}, required=True)
    size = new_field("size", {"type": "integer"})
    created = await create_type(client, admin, new_definition(title, size, prefix="LIST"))
    ids = []
    for i in range(count):
        ids.append((await new_ticket(admin, created["id"], {title["id"]: f"t{i}", size["id"]: i % 2}))["objectId"])
    return created, ids


async def list_tickets(client: httpx.AsyncClient, api: TenantApi, **params: Any) -> dict[str, Any]:
    response = await client.get(TICKETS, params=params, headers=api.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_list_pagination_block(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket_type, ids = await _typed_tickets(client, alpha, 5)
    first = await list_tickets(client, agent, ticket_type_id=ticket_type["id"], per_page=2, order="asc")
    assert set(first) == {"data", "pagination"}
    assert [t["object_id"] for t in first["data"]] == ids[:2]
    assert all(set(t) == TICKET_KEYS for t in first["data"])
    pagination = first["pagination"]
    assert {k: v for k, v in pagination.items() if not k.endswith("_url")} == {
        "total": 5,
        "per_page": 2,
        "current_page": 1,
        "last_page": 3,
    }
    assert list(pagination) == ["total", "per_page", "current_page", "last_page", "next_page_url", "prev_page_url"]
    assert pagination["prev_page_url"] is None
    next_url = httpx.URL(pagination["next_page_url"])
    assert next_url.path == TICKETS
    assert dict(next_url.params) == {
        "ticket_type_id": ticket_type["id"],
        "per_page": "2",
        "order": "asc",
        "page": "2",
    }

    second = (await client.get(pagination["next_page_url"], headers=agent.headers)).json()
    assert [t["object_id"] for t in second["data"]] == ids[2:4]
    assert second["pagination"]["current_page"] == 2
    assert httpx.URL(second["pagination"]["prev_page_url"]).params["page"] == "1"
    third = (await client.get(second["pagination"]["next_page_url"], headers=agent.headers)).json()
    assert [t["object_id"] for t in third["data"]] == ids[4:]
    assert third["pagination"]["next_page_url"] is None
    beyond = await list_tickets(client, agent, ticket_type_id=ticket_type["id"], per_page=2, page=9)
    assert beyond["data"] == []
    assert (beyond["pagination"]["current_page"], beyond["pagination"]["last_page"]) == (9, 3)
    assert beyond["pagination"]["next_page_url"] is None


async def test_list_per_page_defaults_to_20_and_allows_100(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket_type, _ = await _typed_tickets(client, alpha, 1)
    page = await list_tickets(client, agent, ticket_type_id=ticket_type["id"])
    assert page["pagination"] == {
        "total": 1,
        "per_page": 20,
        "current_page": 1,
        "last_page": 1,
        "next_page_url": None,
        "prev_page_url": None,
    }
    assert (await list_tickets(client, agent, per_page=100))["pagination"]["per_page"] == 100
    empty_type = await create_type(client, TenantApi.admin(client, alpha), new_definition())
    none = await list_tickets(client, agent, ticket_type_id=empty_type["id"])
    assert (none["data"], none["pagination"]["total"], none["pagination"]["last_page"]) == ([], 0, 1)


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"per_page": "101"}, {"per_page": "Expected `int` <= 100"}),
        ({"per_page": "0"}, {"per_page": "Expected `int` >= 1"}),
        ({"page": "0"}, {"page": "Expected `int` >= 1"}),
        ({"order": "up"}, {"order": "Invalid enum value 'up'"}),
        ({"ticket_type_id": "REQ"}, {"ticket_type_id": "Invalid UUID"}),
        # Litestar alone read these as no filter at all (found by Schemathesis).
        ({"ticket_type_id": "null"}, {"ticket_type_id": "Invalid UUID"}),
        ({"ticket_type_id": ""}, {"ticket_type_id": "Invalid UUID"}),
    ],
)
async def test_list_refuses_bad_query_parameters(
    client: httpx.AsyncClient, alpha: TenantSpec, params: dict[str, str], reason: dict[str, str]
) -> None:
    response = await client.get(TICKETS, params=params, headers=TenantApi.agent(client, alpha).headers)
    assert response.status_code == 400
    assert response.json() == invalid("The request failed validation", reason)


async def test_list_filters_by_type_and_field_values(
    client: httpx.AsyncClient, alpha: TenantSpec, request_type: dict[str, Any], f: dict[str, str]
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket_type, ids = await _typed_tickets(client, alpha, 4)
    by_type = await list_tickets(client, agent, ticket_type_id=ticket_type["id"])
    assert sorted(t["object_id"] for t in by_type["data"]) == sorted(ids)
    assert {t["ticket_type_id"] for t in by_type["data"]} == {ticket_type["id"]}

    size = next(fd["id"] for fd in ticket_type["fields"] if fd["key"] == "size")
    title = next(fd["id"] for fd in ticket_type["fields"] if fd["key"] == "title")
    odd = await list_tickets(client, agent, ticket_type_id=ticket_type["id"], **{f"data.{size}": "1"})
    assert sorted(t["object_id"] for t in odd["data"]) == [ids[1], ids[3]]
    assert odd["pagination"]["total"] == 2
    both = await list_tickets(client, agent, **{f"data.{size}": "0", f"data.{title}": "t2"})
    assert [t["object_id"] for t in both["data"]] == [ids[2]]

    await new_ticket(agent, request_type["id"], {f["title"]: "hay"})
    needle = await new_ticket(agent, request_type["id"], {f["title"]: "needle"})
    found = await list_tickets(client, agent, **{f"data.{f['title']}": "needle"})
    assert [t["id"] for t in found["data"]] == [needle["id"]]
    nothing = await list_tickets(client, agent, **{f"data.{f['title']}": "absent"})
    assert (nothing["data"], nothing["pagination"]["total"]) == ([], 0)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("data.title", {"data.title": FIELD_FORMAT}),
        ("data.", {"data.": FIELD_FORMAT}),
        ("data.3F44DB9A-839C-45A1-B635-BA63A5BAC8B8", {"data.3F44DB9A-839C-45A1-B635-BA63A5BAC8B8": FIELD_FORMAT}),
    ],
)
async def test_list_refuses_malformed_field_filters(
    client: httpx.AsyncClient, alpha: TenantSpec, name: str, reason: dict[str, str]
) -> None:
    response = await client.get(TICKETS, params={name: "x"}, headers=TenantApi.agent(client, alpha).headers)
    assert response.status_code == 400
    assert response.json() == invalid("Invalid query parameters", reason)


async def test_list_refuses_more_than_ten_field_filters(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    params = {f"data.{uuid.uuid4()}": "x" for _ in range(11)}
    response = await client.get(TICKETS, params=params, headers=TenantApi.agent(client, alpha).headers)
    assert response.status_code == 400
    assert response.json() == invalid("Invalid query parameters", {"data": "at most 10 filters"})


async def test_list_sorts_by_created_and_updated_at(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket_type, ids = await _typed_tickets(client, alpha, 3)

    async def order(**params: str) -> list[str]:
        page = await list_tickets(client, agent, ticket_type_id=ticket_type["id"], **params)
        return [t["object_id"] for t in page["data"]]

    assert await order() == ids[::-1]  # default: created_at desc
    assert await order(sort="created_at", order="asc") == ids
    assert await order(sort="created_at", order="desc") == ids[::-1]

    first = await read(agent, ids[0])
    touched = await agent.update(ids[0], {"etag": first["etag"], "ticketUpdate": {first_field(first): "touched"}})
    assert touched.status_code == 200, touched.text
    assert await order(sort="updated_at", order="desc") == [ids[0], ids[2], ids[1]]
    assert await order(sort="updated_at", order="asc") == [ids[1], ids[2], ids[0]]


def first_field(ticket: dict[str, Any]) -> str:
    """The title field of a _typed_tickets ticket: the one holding a string."""
    return next(k for k, v in ticket["data"].items() if isinstance(v, str))


async def test_list_order_is_stable_when_timestamps_tie(
    client: httpx.AsyncClient, alpha: TenantSpec, db: asyncpg.Connection
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket_type, ids = await _typed_tickets(client, alpha, 5)
    # Give every ticket of the type the same timestamps: the id breaks the tie.
    await db.execute(
        "UPDATE ticket SET created_at = '2030-01-01T00:00:00Z', updated_at = '2030-01-01T00:00:00Z' WHERE type_id = $1",
        uuid.UUID(ticket_type["id"]),
    )
    for sort in ("created_at", "updated_at"):
        for direction in ("asc", "desc"):
            full = await list_tickets(client, agent, ticket_type_id=ticket_type["id"], sort=sort, order=direction)
            listed = [t["id"] for t in full["data"]]
            assert listed == sorted(listed, key=uuid.UUID, reverse=direction == "desc")
            paged = []
            for page in (1, 2, 3, 4, 5):
                one = await list_tickets(
                    client, agent, ticket_type_id=ticket_type["id"], sort=sort, order=direction, per_page=1, page=page
                )
                paged += [t["id"] for t in one["data"]]
            assert paged == listed
    assert len(set(ids)) == 5


# ---------------------------------------------------------------------------------------------------------------
# tenant isolation (who may call which route: tests/integration/test_auth_matrix.py)


async def test_an_update_naming_an_unknown_field_is_refused_before_the_ticket_is_looked_up(
    client: httpx.AsyncClient, alpha: TenantSpec, f: dict[str, str]
) -> None:
    # The values are checked first: an absent ticket is a 404 only for a body that is fine on its own.
    agent = TenantApi.agent(client, alpha)
    absent = "REQ-99999999"
    unknown_field = await agent.update(absent, {"etag": str(uuid.uuid4()), "ticketUpdate": {str(uuid.uuid4()): "x"}})
    assert unknown_field.status_code == 400, unknown_field.text
    assert unknown_field.json()["code"] == "INPUT_VALIDATION_FAILURE"
    known_field = await agent.update(absent, {"etag": str(uuid.uuid4()), "ticketUpdate": {f["counter"]: 1}})
    assert (known_field.status_code, known_field.json()) == (404, not_found(absent))


async def test_beta_cannot_reach_alphas_tickets(
    client: httpx.AsyncClient, alpha: TenantSpec, beta: TenantSpec, db: asyncpg.Connection
) -> None:
    # The same prefix and fields in both tenants: beta's requests are well-formed for beta, only the data is alpha's.
    prefix = "TWIN"
    title = new_field("title", {"type": "string"}, required=True)
    alpha_type = await create_type(client, TenantApi.admin(client, alpha), new_definition(title, prefix=prefix))
    beta_type = await create_type(client, TenantApi.admin(client, beta), new_definition(title, prefix=prefix))
    alpha_agent = TenantApi.agent(client, alpha)
    beta_agent = TenantApi.agent(client, beta)
    secret = "alpha's secret"
    ticket = await new_ticket(alpha_agent, alpha_type["id"], {title["id"]: secret})
    object_id = ticket["objectId"]
    assert object_id == f"{prefix}-0001"

    shown = await beta_agent.get(object_id)
    assert (shown.status_code, shown.json()) == (404, not_found(object_id))
    patched = await beta_agent.update(
        object_id, {"etag": ticket["etag"], "ticketUpdate": {title["id"]: "beta was here"}}
    )
    assert (patched.status_code, patched.json()) == (404, not_found(object_id))
    listed = await list_tickets(client, beta_agent, **{f"data.{title['id']}": secret})
    assert (listed["data"], listed["pagination"]["total"]) == ([], 0)
    everything = await list_tickets(client, beta_agent, per_page=100, ticket_type_id=alpha_type["id"])
    assert everything["pagination"]["total"] == 0

    # Display IDs are per tenant: beta's first ticket of the prefix has the same object id, and stays beta's.
    mine = await new_ticket(beta_agent, beta_type["id"], {title["id"]: "beta's own"})
    assert mine["objectId"] == object_id
    assert (await read(beta_agent, object_id))["id"] == mine["id"]
    alpha_view = await read(alpha_agent, object_id)
    assert (alpha_view["id"], alpha_view["etag"], alpha_view["data"]) == (
        ticket["id"],
        ticket["etag"],
        {title["id"]: secret},
    )
    assert len(await events(db, ticket["id"])) == 1


async def test_beta_cannot_reach_alphas_ticket_types(
    client: httpx.AsyncClient, alpha: TenantSpec, beta: TenantSpec
) -> None:
    alpha_admin = TenantApi.admin(client, alpha)
    definition = new_definition()
    alpha_type = await create_type(client, alpha_admin, definition)
    alpha_request = await alpha_admin.ticket_type("REQ")
    beta_agent = TenantApi.agent(client, beta)
    beta_boss = TenantApi.admin(client, beta)

    for type_id in (alpha_type["id"], alpha_request["id"]):
        for path in (f"{TYPES}/{type_id}", f"{TYPES}/{type_id}/schema"):
            response = await client.get(path, headers=beta_agent.headers)
            assert (response.status_code, response.json()) == (404, type_not_found(type_id)), path
        assert type_id not in {t["id"] for t in await beta_agent.ticket_types()}
        archived = await client.get(TYPES, params={"include_archived": "true"}, headers=beta_agent.headers)
        assert type_id not in {t["id"] for t in archived.json()["data"]}
        created = await beta_agent.create(type_id, {})
        assert created.status_code == 400
        assert set(created.json()["validationResult"]["reason"]) == {"ticketTypeId"}

    replaced = await client.put(
        f"{TYPES}/{alpha_type['id']}", json={**definition, "name": "hijacked"}, headers=beta_boss.headers
    )
    assert (replaced.status_code, replaced.json()) == (404, type_not_found(alpha_type["id"]))
    deleted = await client.delete(f"{TYPES}/{alpha_type['id']}", headers=beta_boss.headers)
    assert (deleted.status_code, deleted.json()) == (404, type_not_found(alpha_type["id"]))
    untouched = await client.get(f"{TYPES}/{alpha_type['id']}", headers=alpha_admin.headers)
    assert untouched.json() == alpha_type


async def test_an_update_naming_seventy_thousand_unknown_fields_gets_a_small_error_body(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    request_type = await agent.ticket_type("REQ")
    ticket = await new_ticket(agent, request_type["id"], {field_ids(request_type)["title"]: "Many keys"})
    changes = {f"k{index}": 1 for index in range(70_000)}  # 0.8 MB, under the 1 MiB body limit
    response = await agent.update(ticket["objectId"], {"etag": ticket["etag"], "ticketUpdate": changes})
    assert response.status_code == 400
    assert len(response.content) < 10_000, len(response.content)
    body = response.json()
    reason = body["validationResult"]["reason"]
    assert list(reason) == [*(f"k{index}" for index in range(100)), "_more"]
    assert reason["k0"] == "unknown field for this ticket type"
    assert reason["_more"] == "69900 more problems not listed"
    assert (await agent.get(ticket["objectId"])).json()["etag"] == ticket["etag"]  # nothing changed
