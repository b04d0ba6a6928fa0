"""A ticket names its state next to the state's id: in GET, as-of reads, list entries, history entries (old and new
state) and the answers of create, update and status change. Names come from each worker's cache of the tenant's
states: a rename shows in every worker, a state created since the cache was filled is named at once, and a state
deleted since a history entry named it is shown without a name."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support import (
    STATES,
    STATUS_CHANGED,
    TICKETS,
    UPDATED,
    LiveServer,
    TenantApi,
    TenantSpec,
    by_name,
    field_ids,
    make_settings,
    named,
)

NAMED_KEYS = ("state_id", "state_name", "state_type")
NOTICE_TIMEOUT = 5.0  # seconds for another worker to hear of a change


def state_in(document: dict[str, Any]) -> dict[str, Any]:
    """How a ticket document (or a write's answer) names its state."""
    return {key: document[key] for key in NAMED_KEYS}


def moved(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """A history entry's `state`: from `old` (None on creation) to `new`, each by id, name and type."""
    return {
        "old": old["id"] if old else None,
        "new": new["id"],
        "old_name": old["name"] if old else None,
        "new_name": new["name"],
        "old_state_type": old["state_type"] if old else None,
        "new_state_type": new["state_type"],
    }


async def history_states(api: TenantApi, object_id: str) -> list[dict[str, Any] | None]:
    response = await api.http.get(f"{TICKETS}/{object_id}/history", headers=api.headers)
    assert response.status_code == 200, response.text
    return [entry["state"] for entry in response.json()["data"]]


async def document(api: TenantApi, object_id: str, **params: str) -> dict[str, Any]:
    response = await api.http.get(f"{TICKETS}/{object_id}", params=params, headers=api.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def listed(api: TenantApi, object_id: str) -> dict[str, Any]:
    response = await api.http.get(TICKETS, params={"per_page": 100}, headers=api.headers)
    assert response.status_code == 200, response.text
    return next(entry for entry in response.json()["data"] if entry["object_id"] == object_id)


async def move(api: TenantApi, object_id: str, etag: str, state: str, **extra: str) -> httpx.Response:
    response = await api.change_status(object_id, {"etag": etag, "state": state, **extra})
    assert response.status_code == 200, response.text
    return response


async def a_ticket(api: TenantApi) -> dict[str, Any]:
    request_type = await api.ticket_type("REQ")
    response = await api.create(request_type["id"], {field_ids(request_type)["title"]: "Named states"})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def rename(admin: TenantApi, state: dict[str, Any], **changes: Any) -> dict[str, Any]:
    response = await admin.http.put(f"{STATES}/{state['id']}", headers=admin.headers, json=changes)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_every_response_names_the_state(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    new, reminder = await by_name(agent, "new"), await by_name(agent, "pending reminder")
    request_type = await agent.ticket_type("REQ")
    fields = field_ids(request_type)

    created = await agent.create(request_type["id"], {fields["title"]: "Named states"})
    assert created.status_code == 201, created.text
    assert state_in(created.json()) == {"state_id": new["id"], "state_name": "new", "state_type": "new"}
    object_id, first_etag = created.json()["objectId"], created.json()["etag"]
    shown = await document(agent, object_id)
    assert state_in(shown) == named(new)
    # Next to the id, in this order.
    assert list(shown)[list(shown).index("state_id") : list(shown).index("state_id") + 3] == list(NAMED_KEYS)
    assert state_in(await listed(agent, object_id)) == named(new)

    updated = await agent.update(object_id, {"etag": first_etag, "ticketUpdate": {fields["counter"]: 1}})
    assert updated.json() == {**UPDATED, "etag": updated.json()["etag"], **named(new)}

    etag = updated.json()["etag"]
    changed = await move(agent, object_id, etag, "Pending Reminder", pendingUntil="2031-01-01T00:00:00Z")
    assert changed.json() == {
        **STATUS_CHANGED,
        "etag": changed.json()["etag"],
        "state_id": reminder["id"],
        "state_name": "pending reminder",
        "state_type": "pending reminder",
    }
    assert state_in(await document(agent, object_id)) == named(reminder)
    assert state_in(await listed(agent, object_id)) == named(reminder)
    # The first version, read back, named as it was then (no rename since).
    assert state_in(await document(agent, object_id, asOfEtag=first_etag)) == named(new)
    assert await history_states(agent, object_id) == [moved(None, new), None, moved(new, reminder)]


async def test_a_renamed_state_shows_its_new_name_in_every_worker(
    server: LiveServer, database_url: str, workspace: Path, alpha: TenantSpec
) -> None:
    async with (
        LiveServer(make_settings(database_url, workspace)) as other_worker,
        httpx.AsyncClient(base_url=server.url) as first_http,
        httpx.AsyncClient(base_url=other_worker.url) as second_http,
    ):
        admin = TenantApi.admin(first_http, alpha)
        first, second = TenantApi.agent(first_http, alpha), TenantApi.agent(second_http, alpha)
        new, open_ = await by_name(first, "new"), await by_name(first, "open")
        ticket = await a_ticket(first)
        object_id = ticket["objectId"]
        opened = await move(first, object_id, ticket["etag"], "open")
        # Both workers have the tenant's names cached now.
        for api in (first, second):
            assert state_in(await document(api, object_id)) == named(open_)

        renamed = await rename(admin, open_, name="Working on it", state_type="pending reminder")
        assert (renamed["id"], renamed["name"], renamed["state_type"]) == (
            open_["id"],
            "Working on it",
            "pending reminder",
        )
        expected = {"state_id": open_["id"], "state_name": "Working on it", "state_type": "pending reminder"}
        # The worker that renamed it does not wait for its own notification.
        assert state_in(await document(first, object_id)) == expected

        # The other worker learns of it from the notification, without a restart.
        deadline = time.monotonic() + NOTICE_TIMEOUT
        while state_in(await document(second, object_id)) != expected:
            assert time.monotonic() < deadline, "the other worker still shows the old name"
            await asyncio.sleep(0.02)
        for api in (first, second):
            assert state_in(await document(api, object_id)) == expected
            assert state_in(await listed(api, object_id)) == expected
            # As-of reads and the history show the state's current name (names are not versioned).
            assert state_in(await document(api, object_id, asOfEtag=opened.json()["etag"])) == expected
            assert await history_states(api, object_id) == [moved(None, new), moved(new, renamed)]


async def test_a_state_created_after_the_cache_was_filled_is_named_at_once(
    server: LiveServer, database_url: str, workspace: Path, alpha: TenantSpec
) -> None:
    async with (
        LiveServer(make_settings(database_url, workspace)) as other_worker,
        httpx.AsyncClient(base_url=server.url) as first_http,
        httpx.AsyncClient(base_url=other_worker.url) as second_http,
    ):
        admin = TenantApi.admin(first_http, alpha)
        first, second = TenantApi.agent(first_http, alpha), TenantApi.agent(second_http, alpha)
        ticket = await a_ticket(first)
        object_id = ticket["objectId"]
        assert state_in(await document(second, object_id))["state_name"] == "new"  # the other worker's cache

        made = await first_http.post(STATES, headers=admin.headers, json={"name": "Escalated", "state_type": "open"})
        assert made.status_code == 201, made.text
        moved_to = await move(first, object_id, ticket["etag"], "Escalated")
        assert state_in(moved_to.json()) == named(made.json())
        # No notification is sent for a new state: the unknown id makes the other worker reload, on this request.
        assert state_in(await document(second, object_id)) == named(made.json())


async def test_a_deleted_state_is_shown_without_its_name_in_the_history(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    admin, agent = TenantApi.admin(client, alpha), TenantApi.agent(client, alpha)
    new, open_ = await by_name(agent, "new"), await by_name(agent, "open")
    made = await client.post(STATES, headers=admin.headers, json={"name": "Triage", "state_type": "open"})
    assert made.status_code == 201, made.text
    triage = made.json()
    ticket = await a_ticket(agent)
    object_id = ticket["objectId"]
    to_triage = await move(agent, object_id, ticket["etag"], "Triage")
    await move(agent, object_id, to_triage.json()["etag"], "open")
    assert await history_states(agent, object_id) == [moved(None, new), moved(new, triage), moved(triage, open_)]

    deleted = await client.delete(f"{STATES}/{triage['id']}", headers=admin.headers)
    assert deleted.status_code == 204, deleted.text
    gone = {"id": triage["id"], "name": None, "state_type": None}
    assert await history_states(agent, object_id) == [moved(None, new), moved(new, gone), moved(gone, open_)]
    # The version that was in the deleted state still reads back, with its id and no name.
    in_triage = await document(agent, object_id, asOfEtag=to_triage.json()["etag"])
    assert state_in(in_triage) == {"state_id": triage["id"], "state_name": None, "state_type": None}
