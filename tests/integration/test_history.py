"""A ticket's history and its as-of reads, through the real server.

Covered: the history of a scripted life of a ticket (create, updates that send unchanged and clearing values,
status changes into and out of a pending state with notes, by a person, a service account and a support agent),
entry by entry against what the script did, with each entry's request id and support flag; every past version read
back with `asOf` (at, just after and just before each change, with "Z", "+01:00" encoded and unencoded) and with
`asOfEtag`, byte for byte what GET showed then; history pagination; bad query parameters and unknown tickets;
tenant isolation of both reads; and that neither read changes anything. Authentication and permissions of both
reads: tests/integration/test_auth_matrix.py.
"""

from __future__ import annotations

import datetime
import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support import (
    ADMIN_SCOPE,
    CATALOG,
    STATES,
    STATUS_CHANGED,
    TICKETS,
    UPDATED,
    TenantApi,
    TenantSpec,
    auth_headers,
    create_type,
    field_ids,
    invalid,
    named,
    new_definition,
    timestamp,
    token,
)

MICROSECOND = datetime.timedelta(microseconds=1)
PLUS_ONE = datetime.timezone(datetime.timedelta(hours=1))
ENTRY_KEYS = [
    "sequence", "event", "at", "actor", "request_id", "support", "etag", "changes", "state", "pending_until",
    "assignee", "note", "comment", "attachment_id",
]  # fmt: skip
BAD_AS_OF = "an ISO 8601 timestamp with a time zone, in the years 1 to 9999 in UTC, e.g. 2026-11-22T18:00:00Z"


def not_found(object_id: str, as_of: str | None = None) -> dict[str, Any]:
    suffix = "" if as_of is None else f" as of {as_of}"
    return {"error": True, "message": f"Ticket not found ({object_id}{suffix})"}


def iso(moment: datetime.datetime) -> str:
    return moment.isoformat()


# ---------------------------------------------------------------------------------------------------------------
# helpers


@dataclass(frozen=True)
class Snapshot:
    """A ticket as GET showed it: the exact bytes, the parsed document and the ETag header."""

    content: bytes
    document: dict[str, Any]
    etag_header: str


async def snapshot(api: TenantApi, object_id: str, **params: str) -> Snapshot:
    response = await api.http.get(f"{TICKETS}/{object_id}", params=params, headers=api.headers)
    assert response.status_code == 200, (params, response.text)
    return Snapshot(response.content, response.json(), response.headers["etag"])


async def history(api: TenantApi, object_id: str, **params: Any) -> dict[str, Any]:
    response = await api.http.get(f"{TICKETS}/{object_id}/history", params=params, headers=api.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def full_history(api: TenantApi, object_id: str) -> list[dict[str, Any]]:
    body = await history(api, object_id, per_page=100)
    assert body["pagination"]["last_page"] == 1
    return list(body["data"])


async def states_by_name(api: TenantApi) -> dict[str, dict[str, Any]]:
    response = await api.http.get(STATES, headers=api.headers)
    assert response.status_code == 200, response.text
    return {state["name"]: state for state in response.json()["data"]}


def moved(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """A history entry's `state`: from `old` (None: none, on creation) to `new`, each by id, name and type."""
    return {
        "old": old["id"] if old else None,
        "new": new["id"],
        "old_name": old["name"] if old else None,
        "new_name": new["name"],
        "old_state_type": old["state_type"] if old else None,
        "new_state_type": new["state_type"],
    }


async def send(
    api: TenantApi,
    method: str,
    path: str,
    body: Any,
    *,
    request_id: str | None,
    support: bool = False,
    params: dict[str, str] | None = None,
) -> tuple[httpx.Response, str]:
    """One write; returns the response and the request id the server used (ours if we sent one)."""
    headers = dict(api.headers)
    if request_id is not None:
        headers["x-request-id"] = request_id
    if support:
        headers["issupportrequest"] = "true"
    response = await api.http.request(method, path, params=params, json=body, headers=headers)
    assert response.status_code in (200, 201), response.text
    used = response.headers["x-request-id"]
    if request_id is not None:
        assert used == request_id
    return response, used


async def update(
    api: TenantApi,
    object_id: str,
    etag: str,
    changes: dict[str, Any],
    *,
    request_id: str | None,
    support: bool = False,
    state: dict[str, Any],
) -> tuple[str, str]:
    """Returns the new etag and the request id; the answer names `state`, the state the ticket is in."""
    response, used = await send(
        api,
        "PATCH",
        f"{TICKETS}/{object_id}/update",
        {"etag": etag, "ticketUpdate": changes},
        request_id=request_id,
        support=support,
        params=CATALOG,
    )
    body = response.json()
    assert body == {**UPDATED, "etag": body["etag"], **named(state)}
    return str(body["etag"]), used


async def change_status(
    api: TenantApi,
    object_id: str,
    etag: str,
    state: str,
    *,
    request_id: str | None,
    support: bool = False,
    now_in: dict[str, Any],
    **extra: str,
) -> tuple[str, str]:
    """Returns the new etag and the request id; `state` names the target by id or name, `now_in` is the state the
    answer must name; `extra` is note and/or pendingUntil."""
    response, used = await send(
        api,
        "PATCH",
        f"{TICKETS}/{object_id}/status",
        {"etag": etag, "state": state, **extra},
        request_id=request_id,
        support=support,
    )
    body = response.json()
    assert body == {**STATUS_CHANGED, "etag": body["etag"], **named(now_in)}
    return str(body["etag"]), used


async def new_ticket(api: TenantApi, type_id: str, data: dict[str, Any]) -> tuple[str, str]:
    """Returns the object id and the etag."""
    response = await api.create(type_id, data)
    assert response.status_code == 201, response.text
    return response.json()["objectId"], response.json()["etag"]


async def ticket_with_events(api: TenantApi, count: int) -> str:
    """A REQ ticket with `count` events: its creation, then counter updates."""
    request_type = await api.ticket_type("REQ")
    counter = field_ids(request_type)["counter"]
    new = (await states_by_name(api))["new"]
    object_id, etag = await new_ticket(api, request_type["id"], {field_ids(request_type)["title"]: "Busy"})
    for value in range(1, count):
        etag, _ = await update(api, object_id, etag, {counter: value}, request_id=None, state=new)
    return object_id


@dataclass(frozen=True)
class Step:
    """One write of the script and what its history entry must say."""

    event: str
    actor: str
    request_id: str
    support: bool
    etag: str
    changes: dict[str, Any]
    state: dict[str, Any] | None
    pending_until: dict[str, Any] | None
    note: str | None
    after: Snapshot  # GET right after the write
    assignee: dict[str, Any] | None = None  # {"old", "new"} of an assignment

    def entry(self, sequence: int) -> dict[str, Any]:
        return {
            "sequence": sequence,
            "event": self.event,
            "at": self.after.document["updated_at"],
            "actor": self.actor,
            "request_id": self.request_id,
            "support": self.support,
            "etag": self.etag,
            "changes": self.changes,
            "state": self.state,
            "pending_until": self.pending_until,
            "assignee": self.assignee,
            "note": self.note,
            "comment": None,
            "attachment_id": None,
        }


def changed(old: Any, new: Any) -> dict[str, Any]:
    return {"old": old, "new": new}


# ---------------------------------------------------------------------------------------------------------------
# the scripted life of a ticket


async def test_history_and_as_of_replay_every_step_of_a_ticket(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha, subject="agent-history")
    robot = TenantApi(
        client, alpha, token(alpha, roles=["agent"], subject="service-account-billing", client_id="billing-sync")
    )
    supporter = TenantApi(client, alpha, token(alpha, roles=["agent", "support"], subject="support-history"))
    subject_of = {id(agent): "agent-history", id(robot): "service-account-billing", id(supporter): "support-history"}
    request_type = await agent.ticket_type("REQ")
    f = field_ids(request_type)
    states = await states_by_name(agent)
    steps: list[Step] = []

    async def step(
        event: str,
        api: TenantApi,
        etag: str,
        request_id: str,
        *,
        support: bool = False,
        changes: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
        pending_until: dict[str, Any] | None = None,
        note: str | None = None,
    ) -> Snapshot:
        """Record the write just made by `api` and what its entry must say; returns the GET right after it."""
        after = await snapshot(agent, object_id)
        assert (after.document["etag"], after.etag_header) == (etag, f'"{etag}"')
        actor = subject_of[id(api)]
        assert (after.document["updated_by"], after.document["lastUpdatedBy"]) == (actor, actor)
        steps.append(Step(event, actor, request_id, support, etag, changes or {}, state, pending_until, note, after))
        return after

    # 1. created by a person, with a request id of our own; defaults are initial values too
    create_id = "create-request"
    response, _ = await send(
        agent,
        "POST",
        TICKETS,
        {
            "ticketTypeId": request_type["id"],
            "data": {f["title"]: "Printer jams", f["description"]: "<p>Floor 3</p>", f["tags"]: ["printer"]},
        },
        request_id=create_id,
        params=CATALOG,
    )
    object_id, etag = response.json()["objectId"], response.json()["etag"]
    assert response.headers["etag"] == f'"{etag}"'
    created = await snapshot(agent, object_id)
    initial_state = states["new"]
    assert {key: created.document[key] for key in ("state_id", "state_name", "state_type")} == named(initial_state)
    await step(
        "ticket.created",
        agent,
        etag,
        create_id,
        changes={
            f["title"]: changed(None, "Printer jams"),
            f["description"]: changed(None, "<p>Floor 3</p>"),
            f["tags"]: changed(None, ["printer"]),
            f["priority"]: changed(None, "normal"),
            f["counter"]: changed(None, 0),
            f["source"]: changed(None, "api"),
        },
        state=moved(None, initial_state),
    )

    # 2. a service account changes two fields and resends the title unchanged; the server picks the request id
    etag, request_id = await update(
        robot,
        object_id,
        etag,
        {f["title"]: "Printer jams", f["counter"]: 1, f["priority"]: "high"},
        request_id=None,
        state=initial_state,
    )
    assert len(request_id) == 32
    await step(
        "ticket.updated",
        robot,
        etag,
        request_id,
        changes={f["counter"]: changed(0, 1), f["priority"]: changed("normal", "high")},
    )

    # 3. the person opens it (a state name in any case), with a note
    etag, request_id = await change_status(
        agent, object_id, etag, "Open", request_id="open-request", now_in=states["open"], note="Looking into it"
    )
    await step(
        "ticket.status_changed",
        agent,
        etag,
        request_id,
        state=moved(initial_state, states["open"]),
        note="Looking into it",
    )

    # 4. a support request clears the description with "" and sets a never-set field to null
    etag, request_id = await update(
        supporter,
        object_id,
        etag,
        {f["description"]: "", f["due_date"]: None, f["requester_email"]: "ada@example.com"},
        request_id="clear-request",
        support=True,
        state=states["open"],
    )
    # due_date had no value and still has none, but the key is new in the document: recorded, so that the
    # version can be rebuilt byte for byte.
    await step(
        "ticket.updated",
        supporter,
        etag,
        request_id,
        support=True,
        changes={
            f["description"]: changed("<p>Floor 3</p>", ""),
            f["due_date"]: changed(None, None),
            f["requester_email"]: changed(None, "ada@example.com"),
        },
    )

    # 5. the service account puts it on hold until a time given with another offset
    wake_up = "2031-03-04T05:06:07.089+02:00"
    etag, request_id = await change_status(
        robot,
        object_id,
        etag,
        states["pending reminder"]["id"],
        request_id="hold-request",
        now_in=states["pending reminder"],
        note="Waiting for parts",
        pendingUntil=wake_up,
    )
    on_hold = await step(
        "ticket.status_changed",
        robot,
        etag,
        request_id,
        state=moved(states["open"], states["pending reminder"]),
        pending_until=changed(None, "2031-03-04T03:06:07.089000Z"),
        note="Waiting for parts",
    )
    assert timestamp(on_hold.document["pending_until"]) == timestamp(wake_up)
    assert on_hold.document["pending_until"] == "2031-03-04T03:06:07.089000Z"

    # 6. while pending: an update asking for support without the support role is not a support request; the
    #    counter sent with its current value is not a change, and the state and pending time stay (null)
    etag, request_id = await update(
        agent,
        object_id,
        etag,
        {f["tags"]: ["printer", "floor-3"], f["counter"]: 1},
        request_id="tags-request",
        support=True,
        state=states["pending reminder"],
    )
    await step(
        "ticket.updated",
        agent,
        etag,
        request_id,
        changes={f["tags"]: changed(["printer"], ["printer", "floor-3"])},
    )

    # 7. an update that changes no value is still a write (new etag, time, author) with no changes
    etag, request_id = await update(
        robot, object_id, etag, {f["priority"]: "high"}, request_id="noop-request", state=states["pending reminder"]
    )
    await step("ticket.updated", robot, etag, request_id)

    # 8. support takes it out of the pending state
    etag, request_id = await change_status(
        supporter,
        object_id,
        etag,
        "OPEN",
        request_id="resume-request",
        support=True,
        now_in=states["open"],
        note="Parts arrived",
    )
    await step(
        "ticket.status_changed",
        supporter,
        etag,
        request_id,
        support=True,
        state=moved(states["pending reminder"], states["open"]),
        pending_until=changed("2031-03-04T03:06:07.089000Z", None),
        note="Parts arrived",
    )

    # refused writes leave no trace: a move to the state it is in, a stale etag
    same = await client.patch(
        f"{TICKETS}/{object_id}/status",
        json={"etag": etag, "state": states["open"]["id"], "note": "Still on it"},
        headers=agent.headers,
    )
    assert (same.status_code, same.json()["code"]) == (400, "TRANSITION_NOT_ALLOWED")
    stale = await agent.update(object_id, {"etag": steps[-2].etag, "ticketUpdate": {f["counter"]: 7}})
    assert (stale.status_code, stale.json()["code"]) == (400, "ETAG_MISMATCH")
    assert await snapshot(agent, object_id) == steps[-1].after

    # 9. closed, without a note
    etag, request_id = await change_status(
        agent, object_id, etag, "closed", request_id="close-request", now_in=states["closed"]
    )
    await step("ticket.status_changed", agent, etag, request_id, state=moved(states["open"], states["closed"]))

    # (a) the history is exactly the script, oldest first
    recorded = await full_history(agent, object_id)
    assert recorded == [s.entry(sequence) for sequence, s in enumerate(steps, start=1)]
    assert all(list(entry) == ENTRY_KEYS for entry in recorded)
    # The GET documents agree with the recorded changes: each version is the previous one with the new values.
    for before, after in itertools.pairwise(steps):
        new_values = {key: change["new"] for key, change in after.changes.items()}
        assert after.after.document["data"] == {**before.after.document["data"], **new_values}
    assert steps[-1].after.document == (await snapshot(agent, object_id)).document

    # (b) every version, by time and by etag, byte for byte as GET showed it then
    for index, current in enumerate(steps):
        at = timestamp(current.after.document["updated_at"])
        reads = {
            "asOf at the change": {"asOf": iso(at)},
            "asOf as GET wrote it": {"asOf": current.after.document["updated_at"]},
            "asOf just after": {"asOf": iso(at + MICROSECOND)},
            "asOf in +01:00": {"asOf": iso(at.astimezone(PLUS_ONE))},
            "asOfEtag": {"asOfEtag": current.etag},
        }
        if index + 1 < len(steps):
            following = timestamp(steps[index + 1].after.document["updated_at"])
            assert at + MICROSECOND < following
            reads["asOf just before the next change"] = {"asOf": iso(following - MICROSECOND)}
            reads["asOf halfway to the next change"] = {"asOf": iso(at + (following - at) / 2)}
        else:
            reads["asOf in the future"] = {"asOf": "2999-01-01T00:00:00Z"}
        for label, params in reads.items():
            shown = await snapshot(agent, object_id, **params)
            assert shown == current.after, (index + 1, label)
        # "+01:00" unencoded in the URL: its "+" arrives as a space, and is still understood
        raw = await client.get(f"{TICKETS}/{object_id}?asOf={iso(at.astimezone(PLUS_ONE))}", headers=agent.headers)
        assert (raw.status_code, raw.content, raw.headers["etag"]) == (
            200,
            current.after.content,
            current.after.etag_header,
        ), index + 1

    # before the creation, the ticket did not exist
    before_creation = timestamp(created.document["created_at"]) - MICROSECOND
    response = await client.get(f"{TICKETS}/{object_id}", params={"asOf": iso(before_creation)}, headers=agent.headers)
    assert (response.status_code, response.json()) == (404, not_found(object_id, iso(before_creation)))


async def test_support_flag_follows_the_tenants_own_support_role(client: httpx.AsyncClient, beta: TenantSpec) -> None:
    # beta's support role is "helpdesk"; alpha's role name "support" means nothing in beta.
    helpdesk = TenantApi(client, beta, token(beta, roles=["agent", "helpdesk"], subject="beta-helpdesk"))
    pretender = TenantApi(client, beta, token(beta, roles=["agent", "support"], subject="beta-pretender"))
    request_type = await helpdesk.ticket_type("REQ")
    counter = field_ids(request_type)["counter"]
    response, _ = await send(
        helpdesk,
        "POST",
        TICKETS,
        {"ticketTypeId": request_type["id"], "data": {field_ids(request_type)["title"]: "Beta support"}},
        request_id=None,
        support=True,
        params=CATALOG,
    )
    object_id, etag = response.json()["objectId"], response.json()["etag"]
    new = (await states_by_name(helpdesk))["new"]
    etag, _ = await update(pretender, object_id, etag, {counter: 1}, request_id=None, support=True, state=new)
    etag, _ = await update(helpdesk, object_id, etag, {counter: 2}, request_id=None, state=new)
    recorded = await full_history(helpdesk, object_id)
    assert [(e["actor"], e["support"]) for e in recorded] == [
        ("beta-helpdesk", True),
        ("beta-pretender", False),
        ("beta-helpdesk", False),
    ]


# ---------------------------------------------------------------------------------------------------------------
# pagination


async def test_history_pages(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    object_id = await ticket_with_events(agent, 5)
    everything = await full_history(agent, object_id)
    assert [e["sequence"] for e in everything] == [1, 2, 3, 4, 5]
    path = f"{TICKETS}/{object_id}/history"

    first = await history(agent, object_id, per_page=2)
    assert list(first) == ["data", "pagination"]
    assert first["pagination"] == {
        "total": 5,
        "per_page": 2,
        "current_page": 1,
        "last_page": 3,
        "next_page_url": f"{path}?per_page=2&page=2",
        "prev_page_url": None,
    }
    second = await client.get(first["pagination"]["next_page_url"], headers=agent.headers)
    assert second.status_code == 200
    assert second.json()["pagination"] == {
        "total": 5,
        "per_page": 2,
        "current_page": 2,
        "last_page": 3,
        "next_page_url": f"{path}?per_page=2&page=3",
        "prev_page_url": f"{path}?per_page=2&page=1",
    }
    third = await client.get(second.json()["pagination"]["next_page_url"], headers=agent.headers)
    assert third.status_code == 200
    assert third.json()["pagination"] == {
        "total": 5,
        "per_page": 2,
        "current_page": 3,
        "last_page": 3,
        "next_page_url": None,
        "prev_page_url": f"{path}?per_page=2&page=2",
    }
    assert first["data"] + second.json()["data"] + third.json()["data"] == everything
    assert [len(first["data"]), len(second.json()["data"]), len(third.json()["data"])] == [2, 2, 1]

    # past the end: no entries, and a link back
    beyond = await history(agent, object_id, page=4, per_page=2)
    assert beyond == {
        "data": [],
        "pagination": {
            "total": 5,
            "per_page": 2,
            "current_page": 4,
            "last_page": 3,
            "next_page_url": None,
            "prev_page_url": f"{path}?per_page=2&page=3",
        },
    }
    # the page link keeps the other parameters in the order they came, and replaces page
    reordered = await client.get(f"{path}?page=1&per_page=2", headers=agent.headers)
    assert reordered.json()["pagination"]["next_page_url"] == f"{path}?per_page=2&page=2"


async def test_history_per_page_defaults_to_20_and_allows_100(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    object_id = await ticket_with_events(agent, 21)
    default = await history(agent, object_id)
    assert [e["sequence"] for e in default["data"]] == list(range(1, 21))
    assert {k: v for k, v in default["pagination"].items() if not k.endswith("_url")} == {
        "total": 21,
        "per_page": 20,
        "current_page": 1,
        "last_page": 2,
    }
    assert default["pagination"]["next_page_url"] == f"{TICKETS}/{object_id}/history?page=2"
    rest = await history(agent, object_id, page=2)
    assert [e["sequence"] for e in rest["data"]] == [21]
    largest = await history(agent, object_id, per_page=100)
    assert largest["data"] == default["data"] + rest["data"]
    assert (largest["pagination"]["per_page"], largest["pagination"]["last_page"]) == (100, 1)


# ---------------------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"per_page": "0"}, {"per_page": "Expected `int` >= 1"}),
        ({"per_page": "101"}, {"per_page": "Expected `int` <= 100"}),
        ({"page": "0"}, {"page": "Expected `int` >= 1"}),
        ({"page": "-1"}, {"page": "Expected `int` >= 1"}),
        ({"page": "first"}, {"page": "Expected `int`, got `str`"}),
    ],
)
async def test_history_refuses_bad_query_parameters(
    client: httpx.AsyncClient, alpha: TenantSpec, params: dict[str, str], reason: dict[str, str]
) -> None:
    agent = TenantApi.agent(client, alpha)
    object_id = await ticket_with_events(agent, 1)
    response = await client.get(f"{TICKETS}/{object_id}/history", params=params, headers=agent.headers)
    assert (response.status_code, response.json()) == (400, invalid("The request failed validation", reason))


@pytest.mark.parametrize(
    ("object_id", "echoed"),
    [
        ("REQ-99999999", "REQ-99999999"),
        ("NOPE-0001", "NOPE-0001"),
        ("req-0001", "req-0001"),
        ("REQ-1", "REQ-1"),
        ("garbage", "garbage"),
        ("REQ-0001%0A", "REQ-0001\n"),  # a trailing newline does not make REQ-0001 of it
        ("R" * 100, "R" * 64),
    ],
    ids=["unknown number", "unknown prefix", "lower case", "too few digits", "garbage", "trailing newline", "long"],
)
async def test_history_of_an_unknown_ticket_is_404(
    client: httpx.AsyncClient, alpha: TenantSpec, object_id: str, echoed: str
) -> None:
    agent = TenantApi.agent(client, alpha)
    response = await client.get(f"{TICKETS}/{object_id}/history", headers=agent.headers)
    assert (response.status_code, response.json()) == (404, not_found(echoed))
    for params in ({"asOf": "2999-01-01T00:00:00Z"}, {"asOfEtag": str(uuid.uuid4())}):
        response = await client.get(f"{TICKETS}/{object_id}", params=params, headers=agent.headers)
        assert (response.status_code, response.json()) == (404, not_found(echoed)), params


@pytest.mark.parametrize(
    "as_of",
    [
        "2026-11-22T18:00:00",  # no time zone
        "2026-11-22",
        "yesterday",
        "",
        "2026-13-01T00:00:00Z",
        "2026-11-22T18:00:00+25:00",
        "1700000000",
    ],
)
async def test_as_of_must_be_a_timestamp_with_a_time_zone(
    client: httpx.AsyncClient, alpha: TenantSpec, as_of: str
) -> None:
    agent = TenantApi.agent(client, alpha)
    object_id = await ticket_with_events(agent, 1)
    response = await client.get(f"{TICKETS}/{object_id}", params={"asOf": as_of}, headers=agent.headers)
    assert (response.status_code, response.json()) == (
        400,
        invalid("Invalid query parameters", {"asOf": BAD_AS_OF}),
    )


async def test_as_of_and_as_of_etag_together_are_refused(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    object_id = await ticket_with_events(agent, 1)
    current = await snapshot(agent, object_id)
    params = {"asOf": current.document["updated_at"], "asOfEtag": current.document["etag"]}
    response = await client.get(f"{TICKETS}/{object_id}", params=params, headers=agent.headers)
    assert (response.status_code, response.json()) == (
        400,
        invalid("Invalid query parameters", {"asOf": "use either asOf or asOfEtag, not both"}),
    )


async def test_as_of_before_creation_and_unknown_etags_are_404(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    object_id = await ticket_with_events(agent, 2)
    other_id = await ticket_with_events(agent, 1)
    other_etag = (await snapshot(agent, other_id)).document["etag"]
    path = f"{TICKETS}/{object_id}"
    # The time is echoed as the server read it.
    long_ago = await client.get(path, params={"asOf": "2020-01-01T00:00:00Z"}, headers=agent.headers)
    assert (long_ago.status_code, long_ago.json()) == (404, not_found(object_id, "2020-01-01T00:00:00+00:00"))
    offset = await client.get(path, params={"asOf": "2020-01-01T00:00:00.5-05:30"}, headers=agent.headers)
    assert (offset.status_code, offset.json()) == (404, not_found(object_id, "2020-01-01T00:00:00.500000-05:30"))
    # An etag the ticket never had: unknown, another ticket's, or not a UUID at all.
    for etag in (str(uuid.uuid4()), other_etag, "not-a-uuid", ""):
        response = await client.get(path, params={"asOfEtag": etag}, headers=agent.headers)
        assert (response.status_code, response.json()) == (404, not_found(object_id, etag)), etag


async def test_out_of_range_as_of_is_a_400_not_a_500(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    """A timestamp Python parses but that leaves the years 1 to 9999 once in UTC (year 1 ahead of UTC, year 9999
    behind it) is the client's bad input, not a 500 from the database driver."""
    agent = TenantApi.agent(client, alpha)
    object_id = await ticket_with_events(agent, 1)
    for as_of in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        response = await client.get(f"{TICKETS}/{object_id}", params={"asOf": as_of}, headers=agent.headers)
        assert response.status_code == 400, (as_of, response.text)
        assert response.json()["validationResult"] == {"reason": {"asOf": BAD_AS_OF}}


async def test_out_of_range_pending_until_is_a_400_not_a_500(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    """The same overflow through the status change: a pendingUntil in the future but past what can be converted to
    UTC is refused naming pendingUntil."""
    agent = TenantApi.agent(client, alpha)
    object_id = await ticket_with_events(agent, 1)
    etag = (await snapshot(agent, object_id)).document["etag"]
    response = await client.patch(
        f"{TICKETS}/{object_id}/status",
        json={"etag": etag, "state": "pending reminder", "pendingUntil": "9999-12-31T23:59:59-01:00"},
        headers=agent.headers,
    )
    assert response.status_code == 400, response.text
    assert response.json()["validationResult"] == {"reason": {"pendingUntil": BAD_AS_OF}}
    assert (await snapshot(agent, object_id)).document["etag"] == etag


# ---------------------------------------------------------------------------------------------------------------
# tenant isolation (who may call the history and as-of reads at all: tests/integration/test_auth_matrix.py)

READS = {
    "history": ("/history", {}),
    "asOf": ("", {"asOf": "2999-01-01T00:00:00Z"}),
    "asOfEtag": ("", {"asOfEtag": "ETAG"}),
}


async def foreign_ticket(client: httpx.AsyncClient, alpha: TenantSpec) -> tuple[str, str]:
    """An alpha ticket of a type of alpha's own (so beta has no ticket with the same object id); its object id and
    etag."""
    admin = TenantApi.admin(client, alpha)
    definition = new_definition()
    created = await create_type(client, admin, definition)
    return await new_ticket(admin, created["id"], {definition["fields"][0]["id"]: "alpha only"})


async def read_as(
    client: httpx.AsyncClient, read: str, object_id: str, etag: str, headers: dict[str, str]
) -> httpx.Response:
    suffix, params = READS[read]
    params = {k: (etag if v == "ETAG" else v) for k, v in params.items()}
    return await client.get(f"{TICKETS}/{object_id}{suffix}", params=params, headers=headers)


@pytest.mark.parametrize("read", READS)
async def test_another_tenants_ticket_is_invisible(
    client: httpx.AsyncClient, alpha: TenantSpec, beta: TenantSpec, read: str
) -> None:
    object_id, etag = await foreign_ticket(client, alpha)
    for roles, scope in ((["reader"], "tickets:read"), (["agent", "boss"], ADMIN_SCOPE)):
        beta_caller = auth_headers(beta, token(beta, roles=roles, scope=scope))
        response = await read_as(client, read, object_id, etag, beta_caller)
        assert (response.status_code, response.json()) == (404, not_found(object_id))
    # and alpha sees it
    alpha_view = await read_as(client, read, object_id, etag, TenantApi.agent(client, alpha).headers)
    assert alpha_view.status_code == 200


# ---------------------------------------------------------------------------------------------------------------
# reads are reads


async def test_history_and_as_of_change_nothing(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    object_id = await ticket_with_events(agent, 3)
    before = await snapshot(agent, object_id)
    recorded = await full_history(agent, object_id)
    first = recorded[0]
    path = f"{TICKETS}/{object_id}"
    calls: list[tuple[str, dict[str, Any]]] = [
        (f"{path}/history", {}),
        (f"{path}/history", {"per_page": 1, "page": 2}),
        (f"{path}/history", {"per_page": 0}),
        (path, {"asOf": first["at"]}),
        (path, {"asOfEtag": first["etag"]}),
        (path, {"asOf": "2020-01-01T00:00:00Z"}),
        (path, {"asOfEtag": str(uuid.uuid4())}),
        (path, {"asOf": "not a time"}),
    ]
    for reader in (agent, TenantApi.admin(client, alpha)):
        for call_path, params in calls:
            await client.get(call_path, params=params, headers={**reader.headers, "issupportrequest": "true"})
    after = await snapshot(agent, object_id)
    assert after == before
    assert await full_history(agent, object_id) == recorded
    # an old version read by asOfEtag still answers If-None-Match with its own etag
    old = await client.get(
        path, params={"asOfEtag": first["etag"]}, headers={**agent.headers, "if-none-match": f'"{first["etag"]}"'}
    )
    assert (old.status_code, old.content, old.headers["etag"]) == (304, b"", f'"{first["etag"]}"')


async def test_an_idempotent_replay_adds_no_entry(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    request_type = await agent.ticket_type("REQ")
    data = {field_ids(request_type)["title"]: "Once"}
    key = {"Idempotency-Key": "once"}
    first = await agent.create(request_type["id"], data, **key)
    replayed = await agent.create(request_type["id"], data, **key)
    assert (first.status_code, replayed.status_code, replayed.headers["idempotent-replayed"]) == (201, 201, "true")
    assert replayed.json() == first.json()
    recorded = await full_history(agent, first.json()["objectId"])
    assert [(e["event"], e["request_id"]) for e in recorded] == [("ticket.created", first.headers["x-request-id"])]


async def test_history_and_as_of_follow_the_per_ticket_sequence_not_the_insertion_order(
    client: httpx.AsyncClient, alpha: TenantSpec, database_url: str
) -> None:
    """On several database nodes (Citus) event ids need not follow a ticket's order; the per-ticket sequence does.
    Renumber two events so that sequence and insertion order disagree: history and as-of reads follow the
    sequence."""
    agent = TenantApi.agent(client, alpha)
    object_id = await ticket_with_events(agent, 3)  # created, counter 1, counter 2
    written = await full_history(agent, object_id)
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction():
            # Through a free number: the unique (tenant_id, ticket_id, sequence) key is checked row by row.
            for old, new in ((2, 100), (3, 2), (100, 3)):
                await connection.execute(
                    "UPDATE ticket_event e SET sequence = $4 FROM ticket t "
                    "WHERE t.tenant_id = $1 AND t.object_id = $2 AND e.tenant_id = t.tenant_id "
                    "AND e.ticket_id = t.id AND e.sequence = $3",
                    alpha.id,
                    object_id,
                    old,
                    new,
                )
    finally:
        await connection.close()
    renumbered = await full_history(agent, object_id)
    # The second write (counter 2) is now number 2 and comes first; the first write (counter 1) is number 3.
    assert [entry["etag"] for entry in renumbered] == [written[0]["etag"], written[2]["etag"], written[1]["etag"]]
    assert [entry["sequence"] for entry in renumbered] == [1, 2, 3]
    counter = field_ids(await agent.ticket_type("REQ"))["counter"]
    response = await client.get(
        f"{TICKETS}/{object_id}", params={"asOfEtag": written[2]["etag"]}, headers=agent.headers
    )
    assert response.status_code == 200, response.text
    # As of the event now numbered 2: the creation and that event only, so the counter is 2 (the later-numbered
    # event that set it to 1 is not applied yet).
    assert response.json()["data"][counter] == 2
    latest = await agent.get(object_id)
    assert latest.json()["data"][counter] == 2  # the row itself is unchanged: GET shows what was written last
