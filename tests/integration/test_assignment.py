"""Assignment through the real server: `PATCH .../ticket/{objectId}/assign` with `{etag, assignee}` is the same etag
compare-and-swap as `/update` (seed 002's 400 ETAG_MISMATCH when stale, the new etag on success), `null` unassigns,
the assignee shows on GET, in list entries and in as-of reads, and each assignment is a history event naming the old
and the new assignee. Races with /update on one etag are tests/e2e/test_concurrency.py's; who may call is
tests/integration/test_auth_matrix.py's."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import httpx
import pytest

from tests.support import (
    ASSIGNED,
    CATALOG,
    ETAG_MISMATCH,
    MALFORMED_JSON,
    TICKETS,
    UNASSIGNED,
    TenantApi,
    TenantSpec,
    field_ids,
    invalid,
    new_ticket,
    ticket_not_found,
    token,
)

BAD_BODY = "Invalid request body"
NO_ETAG = "required: the ticket's current etag (from GET, create or the previous change)"
SUBJECT_FORMAT = "a subject: 1 to 255 printable ASCII characters"


async def read(api: TenantApi, object_id: str, **params: str) -> dict[str, Any]:
    response = await api.http.get(f"{TICKETS}/{object_id}", params=params, headers=api.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def entries(api: TenantApi, object_id: str) -> list[dict[str, Any]]:
    response = await api.history(object_id, per_page="100")
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def a_ticket(api: TenantApi, title: str = "Assign me") -> dict[str, Any]:
    """A new REQ ticket's GET document."""
    request_type = await api.ticket_type("REQ")
    created = await new_ticket(api, request_type["id"], {field_ids(request_type)["title"]: title})
    return await read(api, created["objectId"])


def state_of(ticket: dict[str, Any]) -> dict[str, Any]:
    return {key: ticket[key] for key in ("state_id", "state_name", "state_type")}


async def test_assign_answers_the_new_etag_and_the_ticket_shows_its_assignee(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha, subject="dispatcher")
    ticket = await a_ticket(agent)
    assert ticket["assignee"] is None

    response = await agent.assign(ticket["object_id"], {"etag": ticket["etag"], "assignee": "agent-7"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {**ASSIGNED, "etag": body["etag"], **state_of(ticket), "assignee": "agent-7"}
    assert list(body) == [
        "success", "message", "status", "etag", "state_id", "state_name", "state_type", "assignee",
    ]  # fmt: skip
    assert str(uuid.UUID(body["etag"])) == body["etag"] != ticket["etag"]
    assert response.headers["etag"] == f'"{body["etag"]}"'
    assert "idempotent-replayed" not in response.headers

    shown = await read(agent, ticket["object_id"])
    assert (shown["etag"], shown["assignee"]) == (body["etag"], "agent-7")
    # An assignment is a write by its caller; the data and the state are untouched.
    assert (shown["updated_by"], shown["lastUpdatedBy"], shown["created_by"]) == ("dispatcher",) * 3
    assert (shown["data"], state_of(shown)) == (ticket["data"], state_of(ticket))
    assert shown["updated_at"] > ticket["updated_at"]

    listed = await client.get(TICKETS, params={"per_page": "100"}, headers=agent.headers)
    assert listed.status_code == 200
    [entry] = [t for t in listed.json()["data"] if t["object_id"] == ticket["object_id"]]
    assert entry == shown


async def test_null_unassigns(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await a_ticket(agent)
    assigned = await agent.assign(ticket["object_id"], {"etag": ticket["etag"], "assignee": "agent-7"})
    unassigned = await agent.assign(ticket["object_id"], {"etag": assigned.json()["etag"], "assignee": None})
    assert unassigned.status_code == 200, unassigned.text
    body = unassigned.json()
    assert body == {**UNASSIGNED, "etag": body["etag"], **state_of(ticket), "assignee": None}
    shown = await read(agent, ticket["object_id"])
    assert (shown["etag"], shown["assignee"]) == (body["etag"], None)


async def test_any_subject_of_up_to_255_printable_ascii_characters_is_accepted(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    """No users directory yet: a subject the service has never seen is assigned all the same."""
    agent = TenantApi.agent(client, alpha)
    ticket = await a_ticket(agent)
    etag = ticket["etag"]
    for subject in ("x", "service-account-billing", " spaced out ", "~" * 255, str(uuid.uuid4())):
        response = await agent.assign(ticket["object_id"], {"etag": etag, "assignee": subject})
        assert response.status_code == 200, (subject, response.text)
        etag = response.json()["etag"]
        assert (await read(agent, ticket["object_id"]))["assignee"] == subject


async def test_a_stale_etag_is_the_contract_etag_mismatch_and_changes_nothing(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await a_ticket(agent)
    first = await agent.assign(ticket["object_id"], {"etag": ticket["etag"], "assignee": "first"})
    assert first.status_code == 200
    before = await read(agent, ticket["object_id"])
    events = await entries(agent, ticket["object_id"])
    for etag in (ticket["etag"], str(uuid.uuid4()), "not-a-uuid"):
        stale = await agent.assign(ticket["object_id"], {"etag": etag, "assignee": "second"})
        assert (stale.status_code, stale.json()) == (400, ETAG_MISMATCH), etag
    assert await read(agent, ticket["object_id"]) == before
    assert await entries(agent, ticket["object_id"]) == events


async def test_an_update_after_an_assignment_needs_the_assignments_etag(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    """Assignment and update share one etag: whichever writes second with the old etag loses."""
    agent = TenantApi.agent(client, alpha)
    ticket = await a_ticket(agent)
    counter = field_ids(await agent.ticket_type("REQ"))["counter"]
    assigned = await agent.assign(ticket["object_id"], {"etag": ticket["etag"], "assignee": "agent-7"})
    assert assigned.status_code == 200
    stale = await agent.update(ticket["object_id"], {"etag": ticket["etag"], "ticketUpdate": {counter: 1}})
    assert (stale.status_code, stale.json()) == (400, ETAG_MISMATCH)
    fresh = await agent.update(ticket["object_id"], {"etag": assigned.json()["etag"], "ticketUpdate": {counter: 1}})
    assert fresh.status_code == 200, fresh.text
    # The update keeps the assignee; an assignment with the update's predecessor etag is now stale too.
    shown = await read(agent, ticket["object_id"])
    assert (shown["assignee"], shown["data"][counter]) == ("agent-7", 1)
    again = await agent.assign(ticket["object_id"], {"etag": assigned.json()["etag"], "assignee": "late"})
    assert (again.status_code, again.json()) == (400, ETAG_MISMATCH)


async def test_history_records_each_assignment_and_as_of_shows_the_assignee_then(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha, subject="lead")
    ticket = await a_ticket(agent)
    object_id = ticket["object_id"]
    counter = field_ids(await agent.ticket_type("REQ"))["counter"]
    versions = [await read(agent, object_id)]

    async def write(path: str, body: dict[str, Any], request_id: str, **params: str) -> None:
        headers = {**agent.headers, "x-request-id": request_id}
        response = await client.patch(f"{TICKETS}/{object_id}/{path}", params=params, headers=headers, json=body)
        assert response.status_code == 200, response.text
        versions.append(await read(agent, object_id))

    await write("assign", {"etag": versions[-1]["etag"], "assignee": "ada"}, "assign-ada")
    await write("update", {"etag": versions[-1]["etag"], "ticketUpdate": {counter: 5}}, "count", **CATALOG)
    await write("assign", {"etag": versions[-1]["etag"], "assignee": "grace"}, "assign-grace")
    await write("status", {"etag": versions[-1]["etag"], "state": "open"}, "open-it")
    await write("assign", {"etag": versions[-1]["etag"], "assignee": "grace"}, "grace-again")
    await write("assign", {"etag": versions[-1]["etag"], "assignee": None}, "unassign")

    history = await entries(agent, object_id)
    assert [entry["event"] for entry in history] == [
        "ticket.created", "ticket.assigned", "ticket.updated", "ticket.assigned", "ticket.status_changed",
        "ticket.assigned", "ticket.assigned",
    ]  # fmt: skip
    assert [entry["assignee"] for entry in history] == [
        None,
        {"old": None, "new": "ada"},
        None,
        {"old": "ada", "new": "grace"},
        None,
        # Naming the assignee the ticket already has is still an assignment, with both sides shown.
        {"old": "grace", "new": "grace"},
        {"old": "grace", "new": None},
    ]
    assigned = [entry for entry in history if entry["event"] == "ticket.assigned"]
    assert [entry["request_id"] for entry in assigned] == ["assign-ada", "assign-grace", "grace-again", "unassign"]
    for entry in assigned:
        assert (entry["actor"], entry["support"], entry["changes"], entry["state"], entry["note"]) == (
            "lead", False, {}, None, None,
        )  # fmt: skip
    assert [entry["etag"] for entry in history] == [version["etag"] for version in versions]
    # Each version comes back byte for byte as GET showed it, by etag and by time, with its assignee.
    for version in versions:
        assert await read(agent, object_id, asOfEtag=version["etag"]) == version
        assert await read(agent, object_id, asOf=version["updated_at"]) == version
    assert [version["assignee"] for version in versions] == [None, "ada", "ada", "grace", "grace", "grace", None]


async def test_the_support_flag_is_recorded_on_an_assignment(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    supporter = TenantApi(client, alpha, token(alpha, roles=["agent", "support"], subject="helper"))
    ticket = await a_ticket(supporter)
    response = await supporter.assign(
        ticket["object_id"], {"etag": ticket["etag"], "assignee": "helper"}, issupportrequest="true"
    )
    assert response.status_code == 200, response.text
    last = (await entries(supporter, ticket["object_id"]))[-1]
    assert (last["event"], last["actor"], last["support"]) == ("ticket.assigned", "helper", True)


ETAG = "00000000-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param({"assignee": "ada"}, {"etag": NO_ETAG}, id="no etag"),
        pytest.param({"etag": "", "assignee": "ada"}, {"etag": NO_ETAG}, id="empty etag"),
        pytest.param(
            {"etag": ETAG},
            {"assignee": "required: the subject to assign the ticket to, or null to unassign it"},
            id="no assignee",
        ),
        pytest.param({"etag": ETAG, "assignee": ""}, {"assignee": SUBJECT_FORMAT}, id="empty assignee"),
        pytest.param({"etag": ETAG, "assignee": "x" * 256}, {"assignee": SUBJECT_FORMAT}, id="256 characters"),
        pytest.param({"etag": ETAG, "assignee": "tab\there"}, {"assignee": SUBJECT_FORMAT}, id="control character"),
        pytest.param({"etag": ETAG, "assignee": "zoë"}, {"assignee": SUBJECT_FORMAT}, id="not ascii"),
        pytest.param({"etag": ETAG, "assignee": "nul\u0000"}, {"assignee": SUBJECT_FORMAT}, id="nul"),
        pytest.param(
            {},
            {
                "etag": NO_ETAG,
                "assignee": "required: the subject to assign the ticket to, or null to unassign it",
            },
            id="empty body",
        ),
    ],
)
async def test_a_bad_body_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, alpha: TenantSpec, body: dict[str, Any], reason: dict[str, str]
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await a_ticket(agent)
    sent = {**body, "etag": ticket["etag"]} if body.get("etag") == ETAG else body
    response = await agent.assign(ticket["object_id"], sent)
    assert (response.status_code, response.json()) == (400, invalid(BAD_BODY, reason))
    assert await read(agent, ticket["object_id"]) == ticket


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param({"etag": ETAG, "assignee": "ada", "team": "x"}, {"body": "Object contains unknown field `team`"}),
        pytest.param({"etag": ETAG, "assignee": 7}, {"assignee": "Expected `str | null`, got `int`"}),
        pytest.param({"etag": 7, "assignee": "ada"}, {"etag": "Expected `str | null`, got `int`"}),
        pytest.param(["ada"], {"body": "Expected `object`, got `array`"}),
    ],
)
async def test_a_body_of_the_wrong_shape_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, alpha: TenantSpec, body: Any, reason: dict[str, str]
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await a_ticket(agent)
    sent = {**body, "etag": ticket["etag"]} if isinstance(body, dict) and body.get("etag") == ETAG else body
    response = await agent.assign(ticket["object_id"], sent)
    assert (response.status_code, response.json()) == (400, invalid("The request failed validation", reason))
    assert await read(agent, ticket["object_id"]) == ticket


async def test_malformed_json_is_refused(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await a_ticket(agent)
    response = await client.patch(
        f"{TICKETS}/{ticket['object_id']}/assign",
        content=b'{"etag": ',
        headers={**agent.headers, "content-type": "application/json"},
    )
    assert (response.status_code, response.json()) == (400, MALFORMED_JSON)
    assert await read(agent, ticket["object_id"]) == ticket


@pytest.mark.parametrize("object_id", ["REQ-9999", "req-0001", "00000000-0000-4000-8000-000000000000", "X"])
async def test_an_unknown_ticket_is_404(client: httpx.AsyncClient, alpha: TenantSpec, object_id: str) -> None:
    agent = TenantApi.agent(client, alpha)
    await a_ticket(agent)  # REQ-0001 exists
    response = await agent.assign(object_id, {"etag": str(uuid.uuid4()), "assignee": "ada"})
    assert (response.status_code, response.json()) == (404, ticket_not_found(object_id))


async def test_another_tenants_ticket_is_404_and_unchanged(
    client: httpx.AsyncClient, alpha: TenantSpec, beta: TenantSpec
) -> None:
    owner = TenantApi.agent(client, alpha)
    ticket = await a_ticket(owner)
    stranger = TenantApi.agent(client, beta)
    response = await stranger.assign(ticket["object_id"], {"etag": ticket["etag"], "assignee": "agent-1"})
    assert (response.status_code, response.json()) == (404, ticket_not_found(ticket["object_id"]))
    assert await read(owner, ticket["object_id"]) == ticket


async def test_a_retry_with_the_same_idempotency_key_replays_the_first_answer(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await a_ticket(agent)
    body = {"etag": ticket["etag"], "assignee": "ada"}
    first = await agent.assign(ticket["object_id"], body, **{"Idempotency-Key": "assign-1"})
    assert first.status_code == 200, first.text
    # Meanwhile the ticket moves on: the retry still gets the first answer, and writes nothing.
    moved = await agent.assign(ticket["object_id"], {"etag": first.json()["etag"], "assignee": None})
    assert moved.status_code == 200
    events = await entries(agent, ticket["object_id"])
    retry = await agent.assign(ticket["object_id"], body, **{"Idempotency-Key": "assign-1"})
    assert (retry.status_code, retry.json()) == (200, first.json())
    assert (retry.headers["idempotent-replayed"], retry.headers["etag"]) == ("true", first.headers["etag"])
    assert await entries(agent, ticket["object_id"]) == events
    other = await agent.assign(ticket["object_id"], {**body, "assignee": "grace"}, **{"Idempotency-Key": "assign-1"})
    assert (other.status_code, other.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    # Nor is the key an update's.
    counter = field_ids(await agent.ticket_type("REQ"))["counter"]
    update = await agent.update(
        ticket["object_id"],
        {"etag": moved.json()["etag"], "ticketUpdate": {counter: 1}},
        **{"Idempotency-Key": "assign-1"},
    )
    assert (update.status_code, update.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert await entries(agent, ticket["object_id"]) == events


async def test_a_malformed_idempotency_key_is_refused(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await a_ticket(agent)
    response = await agent.assign(
        ticket["object_id"], {"etag": ticket["etag"], "assignee": "ada"}, **{"Idempotency-Key": "x" * 256}
    )
    assert (response.status_code, response.json()) == (
        400,
        invalid("Invalid request headers", {"Idempotency-Key": "1 to 255 printable ASCII characters"}),
    )
    assert await read(agent, ticket["object_id"]) == ticket


async def test_assignment_survives_in_state_and_updates(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    """An update or a status change carries the assignee over: the as-of of each shows it."""
    agent = TenantApi.agent(client, alpha)
    ticket = await a_ticket(agent)
    assigned = await agent.assign(ticket["object_id"], {"etag": ticket["etag"], "assignee": "ada"})
    status = await agent.change_status(ticket["object_id"], {"etag": assigned.json()["etag"], "state": "open"})
    assert status.status_code == 200, status.text
    assert status.json()["state_name"] == "open"
    now = datetime.datetime.now(datetime.UTC).isoformat()
    shown = await read(agent, ticket["object_id"])
    assert shown["assignee"] == "ada"
    assert await read(agent, ticket["object_id"], asOf=now) == shown
