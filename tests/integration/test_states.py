"""The ticket-state API (seed 003's model) and its rules, through the real server."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support import (
    STATE_HAS_REFERENCES,
    STATES,
    TenantApi,
    TenantSpec,
    by_name,
    editable,
    field_ids,
    list_states,
)

DEFAULT_NAMES = ["new", "open", "pending reminder", "closed", "merged", "removed", "pending close"]
# Created with the facility-request template: its initial state is new, states nothing follows are closed.
FACILITY_STATES = {"PENDING": "new", "IN_PROGRESS": "open", "COMPLETED": "closed", "CANCELLED": "closed"}


async def create(api: TenantApi, name: str, **fields: Any) -> httpx.Response:
    body = {"name": name, "state_type": "open", **fields}
    return await api.http.post(STATES, headers=api.headers, json=body)


def reason(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["error"], body["code"], body["status"]) == (True, "INPUT_VALIDATION_FAILURE", 400)
    return dict(body["validationResult"]["reason"])


async def test_tenants_start_with_seed_003_states(client: httpx.AsyncClient, beta: TenantSpec) -> None:
    seeded = await list_states(TenantApi.agent(client, beta))
    # Seed 003's states, plus those the facility-request template's workflow names (beta has that template), and
    # nothing else: every state of a new tenant is the system's.
    assert {s["created_by"] for s in seeded} == {"system"}
    assert sorted(s["name"] for s in seeded) == sorted([*DEFAULT_NAMES, *FACILITY_STATES])
    by = {s["name"]: s for s in seeded}
    assert {name: by[name]["state_type"] for name in FACILITY_STATES} == FACILITY_STATES
    assert by["new"]["default_create"] and by["open"]["default_follow_up"]
    assert by["pending close"]["next_state_id"] == by["closed"]["id"]
    assert by["removed"]["active"] is False
    assert set(by["closed"]) == {
        "id", "name", "state_type", "next_state_id", "ignore_escalation", "default_create", "default_follow_up",
        "note", "active", "created_by", "created_at", "updated_by", "updated_at",
    }  # fmt: skip


async def test_show_one_state_and_unknown_ids(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    closed = await by_name(agent, "closed")
    shown = await client.get(f"{STATES}/{closed['id']}", headers=agent.headers)
    assert (shown.status_code, shown.json()) == (200, closed)
    for unknown in (str(uuid.uuid4()), "not-a-uuid"):
        missing = await client.get(f"{STATES}/{unknown}", headers=agent.headers)
        assert (missing.status_code, missing.json()) == (
            404,
            {"error": True, "message": f"Ticket state not found ({unknown})"},
        )


async def test_admin_creates_changes_and_deletes_a_state(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    closed = await by_name(admin, "closed")
    name = "waiting"
    created = await create(admin, name, state_type="pending close", next_state_id=closed["id"], note="n")
    assert created.status_code == 201, created.text
    state = created.json()
    assert (state["name"], state["next_state_id"], state["note"], state["created_by"]) == (
        name,
        closed["id"],
        "n",
        "admin-1",
    )
    changed = await client.put(
        f"{STATES}/{state['id']}", headers=admin.headers, json=editable(state, ignore_escalation=True, note=None)
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["ignore_escalation"], changed.json()["note"]) == (True, None)
    deleted = await client.delete(f"{STATES}/{state['id']}", headers=admin.headers)
    assert deleted.status_code == 204
    assert name not in {s["name"] for s in await list_states(admin)}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": "Closed"}, {"name": "'Closed' is already used by another state of this tenant"}),
        ({"name": ""}, {"name": "1 to 100 characters, without leading or trailing spaces"}),
        ({"state_type": "pending close"}, {"next_state_id": "required for a pending close state: the state it moves to when the time comes"}),  # noqa: E501
        ({"next_state_id": "UNKNOWN"}, {"next_state_id": "must name an active state of this tenant"}),
        ({"next_state_id": "INACTIVE"}, {"next_state_id": "must name an active state of this tenant"}),
        ({"next_state_id": "FOREIGN"}, {"next_state_id": "must name an active state of this tenant"}),
        ({"default_create": True, "active": False}, {"default_create": "an inactive state cannot be the default_create state"}),  # noqa: E501
    ],
    ids=["duplicate name (any case)", "empty name", "pending close without next", "unknown next", "inactive next",
         "another tenant's state as next", "inactive default"],
)  # fmt: skip
async def test_bad_state_is_refused_and_nothing_changes(
    client: httpx.AsyncClient, alpha: TenantSpec, beta: TenantSpec, fields: dict[str, Any], expected: dict[str, str]
) -> None:
    admin = TenantApi.admin(client, alpha)
    placeholders = {
        "UNKNOWN": str(uuid.uuid4()),
        "INACTIVE": (await by_name(admin, "removed"))["id"],
        "FOREIGN": (await by_name(TenantApi.agent(client, beta), "closed"))["id"],
    }
    fields = {k: placeholders.get(v, v) if isinstance(v, str) else v for k, v in fields.items()}
    before = await list_states(admin)
    assert reason(await create(admin, **{"name": "probe", **fields})) == expected
    assert await list_states(admin) == before


async def test_a_state_cannot_be_its_own_next_state(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    state = (await create(admin, "loop")).json()
    response = await client.put(
        f"{STATES}/{state['id']}", headers=admin.headers, json=editable(state, next_state_id=state["id"])
    )
    assert reason(response) == {"next_state_id": "must name another state, not this one"}


async def test_exactly_one_default_create_and_follow_up_at_all_times(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    admin = TenantApi.admin(client, alpha)
    current = next(s for s in await list_states(admin) if s["default_create"] and s["active"])
    # Removing the flag, deactivating or deleting the holder would leave none: refused, nothing changes.
    for change in ({"default_create": False}, {"active": False}):
        response = await client.put(
            f"{STATES}/{current['id']}", headers=admin.headers, json=editable(current, **change)
        )
        assert reason(response) == {
            "default_create": "this is the tenant's default_create state; make another state the default_create "
            "state first"
        }
    deleted = await client.delete(f"{STATES}/{current['id']}", headers=admin.headers)
    assert set(reason(deleted)) == {"default_create"}
    # Making another state the default moves the flag: still exactly one.
    created = await create(admin, "fresh start", state_type="new", default_create=True)
    assert created.status_code == 201, created.text
    holders = [s["id"] for s in await list_states(admin) if s["default_create"] and s["active"]]
    assert holders == [created.json()["id"]]
    # and new tickets now start there
    agent = TenantApi.agent(client, alpha)
    request_type = await agent.ticket_type("REQ")
    ticket = await agent.create(request_type["id"], {field_ids(request_type)["title"]: "Starts in the new default"})
    assert (await agent.get(ticket.json()["objectId"])).json()["state_id"] == created.json()["id"]
    # and the flag moves back the same way
    restored = await client.put(
        f"{STATES}/{current['id']}", headers=admin.headers, json=editable(current, default_create=True)
    )
    assert restored.status_code == 200


async def test_deleting_a_referenced_state_is_refused(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    admin = TenantApi.admin(client, alpha)
    target = (await create(admin, "target")).json()
    pointing = (await create(admin, "pointing", next_state_id=target["id"])).json()
    before = await list_states(admin)
    refused = await client.delete(f"{STATES}/{target['id']}", headers=admin.headers)
    assert (refused.status_code, refused.json()) == (409, STATE_HAS_REFERENCES)
    assert await list_states(admin) == before
    # A state that tickets are in is referenced too: make a state the default, create a ticket in it, move the
    # default back, and the state cannot be deleted.
    original = next(st for st in await list_states(admin) if st["default_create"] and st["active"])
    holding = (await create(admin, "holding", state_type="new", default_create=True)).json()
    agent = TenantApi.agent(client, alpha)
    request_type = await agent.ticket_type("REQ")
    ticket = await agent.create(request_type["id"], {field_ids(request_type)["title"]: "Holds a state"})
    assert ticket.status_code == 201
    moved_back = await client.put(
        f"{STATES}/{original['id']}", headers=admin.headers, json=editable(original, default_create=True)
    )
    assert moved_back.status_code == 200
    in_use = await client.delete(f"{STATES}/{holding['id']}", headers=admin.headers)
    assert (in_use.status_code, in_use.json()["code"]) == (409, "STATE_HAS_REFERENCES")
    # Deactivating a state that an active state names as next is refused as well.
    deactivated = await client.put(
        f"{STATES}/{target['id']}", headers=admin.headers, json=editable(target, active=False)
    )
    assert reason(deactivated) == {
        "active": f"active states name this state as their next_state_id: {pointing['name']}"
    }


async def test_another_tenants_states_are_out_of_reach(
    client: httpx.AsyncClient, alpha: TenantSpec, beta: TenantSpec
) -> None:
    # Who may call the state routes at all: tests/integration/test_auth_matrix.py. Here: beta's own agent and
    # administrator cannot see, change or delete alpha's state by id.
    alpha_agent = TenantApi.agent(client, alpha)
    alpha_closed = await by_name(alpha_agent, "closed")
    beta_agent = TenantApi.agent(client, beta)
    foreign = f"{STATES}/{alpha_closed['id']}"
    assert (await client.get(foreign, headers=beta_agent.headers)).status_code == 404
    assert alpha_closed["id"] not in {state["id"] for state in await list_states(beta_agent)}
    beta_admin = TenantApi.admin(client, beta)
    assert (await client.put(foreign, headers=beta_admin.headers, json=editable(alpha_closed))).status_code == 404
    assert (await client.delete(foreign, headers=beta_admin.headers)).status_code == 404
    assert await by_name(alpha_agent, "closed") == alpha_closed


async def test_put_changes_only_the_members_sent(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    """Seed 003: `PUT /ticket_states/{id}` with just `{"note": ...}` succeeds; nothing left out is reset."""
    admin = TenantApi.admin(client, alpha)
    closed = await by_name(admin, "closed")
    created = await create(
        admin, "waiting", state_type="pending close", next_state_id=closed["id"], ignore_escalation=True, note="n"
    )
    assert created.status_code == 201, created.text
    state = created.json()
    path = f"{STATES}/{state['id']}"

    noted = await client.put(path, headers=admin.headers, json={"note": "Waiting for the customer"})
    assert noted.status_code == 200, noted.text
    unchanged = {key: value for key, value in state.items() if key not in ("note", "updated_at")}
    assert {key: value for key, value in noted.json().items() if key not in ("note", "updated_at")} == unchanged
    assert noted.json()["note"] == "Waiting for the customer"
    assert noted.json()["ignore_escalation"] is True  # not reset to its default by leaving it out

    cleared = await client.put(
        path, headers=admin.headers, json={"note": None, "state_type": "open", "next_state_id": None}
    )
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["note"], cleared.json()["state_type"], cleared.json()["next_state_id"]) == (
        None,
        "open",
        None,
    )
    assert (await client.get(path, headers=admin.headers)).json() == cleared.json()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"name": None}, {"name": "Expected `str`, got `null`"}),
        ({"active": "yes"}, {"active": "Expected `bool`, got `str`"}),
        ({"active": 0}, {"active": "Expected `bool`, got `int`"}),
        ({"ignore_escalation": "true"}, {"ignore_escalation": "Expected `bool`, got `str`"}),
        ({"colour": "red"}, {"body": "Object contains unknown field `colour`"}),
    ],
    ids=["null name", "active not a boolean", "active 0", "ignore_escalation a string", "unknown member"],
)
async def test_a_bad_put_member_is_refused_and_nothing_changes(
    client: httpx.AsyncClient, alpha: TenantSpec, body: dict[str, Any], expected: dict[str, str]
) -> None:
    admin = TenantApi.admin(client, alpha)
    state = await by_name(admin, "open")
    response = await client.put(f"{STATES}/{state['id']}", headers=admin.headers, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INPUT_VALIDATION_FAILURE"
    assert response.json()["validationResult"]["reason"] == expected
    assert await by_name(admin, "open") == state
