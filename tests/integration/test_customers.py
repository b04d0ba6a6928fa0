"""Customers (a token whose only roles are the tenant file's `customer` roles) on the ticket routes: they create
tickets and read the ones they created (GET, history, as-of by time and by etag), and read ticket types and states;
every other ticket is 404 to them, exactly as a ticket that does not exist; update, status change, assignment and
deletion are 401 USER_PERMISSION_FAILURE, and change nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import (
    ALPHA_ROLES,
    STATES,
    TICKETS,
    TYPES,
    TenantApi,
    TenantFactory,
    TenantSpec,
    field_ids,
    new_ticket,
    permission_failure,
    ticket_not_found,
    token,
)


async def a_ticket(api: TenantApi, title: str) -> dict[str, Any]:
    """A new REQ ticket's GET document, read by its creator."""
    request_type = await api.ticket_type("REQ")
    created = await new_ticket(api, request_type["id"], {field_ids(request_type)["title"]: title})
    response = await api.get(created["objectId"])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def reads(api: TenantApi, ticket: dict[str, Any]) -> list[httpx.Response]:
    """Every way to read a ticket: now, its history, as of a time and as of an etag."""
    path = f"{TICKETS}/{ticket['object_id']}"
    return [
        await api.get(ticket["object_id"]),
        await api.history(ticket["object_id"]),
        await api.http.get(path, params={"asOf": ticket["updated_at"]}, headers=api.headers),
        await api.http.get(path, params={"asOfEtag": ticket["etag"]}, headers=api.headers),
    ]


async def test_a_customer_creates_a_ticket_and_reads_it_every_way(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    customer = TenantApi.customer(client, alpha, subject="customer-ada")
    ticket = await a_ticket(customer, "My printer")
    assert (ticket["created_by"], ticket["updated_by"], ticket["assignee"]) == ("customer-ada", "customer-ada", None)
    now, history, as_of, as_of_etag = await reads(customer, ticket)
    assert [r.status_code for r in (now, history, as_of, as_of_etag)] == [200] * 4
    assert now.json() == as_of.json() == as_of_etag.json() == ticket
    assert [(e["event"], e["actor"]) for e in history.json()["data"]] == [("ticket.created", "customer-ada")]
    # What an agent then does to the ticket, the customer sees too.
    agent = TenantApi.agent(client, alpha)
    assigned = await agent.assign(ticket["object_id"], {"etag": ticket["etag"], "assignee": "agent-1"})
    assert assigned.status_code == 200
    shown = await customer.get(ticket["object_id"])
    assert (shown.json()["assignee"], shown.json()["etag"]) == ("agent-1", assigned.json()["etag"])


async def test_every_other_ticket_is_not_found_for_a_customer(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    ada = TenantApi.customer(client, alpha, subject="customer-ada")
    bob = TenantApi.customer(client, alpha, subject="customer-bob")
    agent = TenantApi.agent(client, alpha)
    mine = await a_ticket(ada, "Ada's")
    others = [await a_ticket(bob, "Bob's"), await a_ticket(agent, "The agent's")]
    for ticket in others:
        for response in await reads(ada, ticket):
            assert (response.status_code, response.json()) == (404, ticket_not_found(ticket["object_id"])), (
                response.request.url
            )
    # The same answer as for a ticket that does not exist: nothing can be probed.
    absent = await ada.get("REQ-9999")
    assert (absent.status_code, absent.json()) == (404, ticket_not_found("REQ-9999"))
    assert (await ada.get(mine["object_id"])).status_code == 200


async def test_a_customer_may_not_change_even_its_own_ticket(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    customer = TenantApi.customer(client, alpha)
    ticket = await a_ticket(customer, "Hands off")
    counter = field_ids(await customer.ticket_type("REQ"))["counter"]
    object_id, etag = ticket["object_id"], ticket["etag"]
    for response, action in (
        (await customer.update(object_id, {"etag": etag, "ticketUpdate": {counter: 1}}), "update the ticket"),
        (await customer.change_status(object_id, {"etag": etag, "state": "open"}), "change the ticket status"),
        (await customer.assign(object_id, {"etag": etag, "assignee": "customer-1"}), "assign the ticket"),
        (await customer.delete(object_id), "delete the ticket"),
    ):
        assert (response.status_code, response.json()) == (401, permission_failure(action))
    assert (await customer.get(object_id)).json() == ticket
    assert len((await customer.history(object_id)).json()["data"]) == 1


async def test_a_customer_reads_ticket_types_and_states_but_does_not_administer_them(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    customer = TenantApi.customer(client, alpha)
    types = await client.get(TYPES, headers=customer.headers)
    assert types.status_code == 200
    request_type = next(t for t in types.json()["data"] if t["prefix"] == "REQ")
    for path in (f"{TYPES}/{request_type['id']}", f"{TYPES}/{request_type['id']}/schema", STATES):
        assert (await client.get(path, headers=customer.headers)).status_code == 200, path
    refused = await client.post(STATES, headers=customer.headers, json={"name": "mine", "state_type": "open"})
    assert (refused.status_code, refused.json()) == (401, permission_failure("administer ticket states"))


async def test_a_customer_needs_the_write_scope_to_create(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    reader = TenantApi(client, alpha, token(alpha, roles=["customer"], scope="tickets:read"))
    request_type = await reader.ticket_type("REQ")
    response = await reader.create(request_type["id"], {field_ids(request_type)["title"]: "no"})
    assert (response.status_code, response.json()) == (401, permission_failure("create a ticket"))


async def test_a_customer_with_an_agent_role_too_is_an_agent(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await a_ticket(agent, "Anyone's")
    both = TenantApi(client, alpha, token(alpha, roles=["customer", "viewer"], subject="customer-viewer"))
    assert [response.status_code for response in await reads(both, ticket)] == [200] * 4


async def test_a_customers_own_deleted_ticket_is_gone_for_it_too(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    customer = TenantApi.customer(client, alpha)
    ticket = await a_ticket(customer, "Short-lived")
    deleted = await TenantApi.admin(client, alpha).delete(ticket["object_id"])
    assert deleted.status_code == 204
    for response in await reads(customer, ticket):
        assert (response.status_code, response.json()) == (404, ticket_not_found(ticket["object_id"]))


@pytest.mark.parametrize("owner", ["customer-1", "someone-else"])
async def test_customers_given_the_delete_role_delete_only_their_own_tickets(
    client: httpx.AsyncClient, tenant_factory: TenantFactory, owner: str
) -> None:
    tenant = await tenant_factory.fresh("self-service", roles={**ALPHA_ROLES, "delete": ["admin", "customer"]})
    customer = TenantApi.customer(client, tenant, subject="customer-1")
    ticket = await a_ticket(TenantApi.customer(client, tenant, subject=owner), "Mine or not")
    response = await customer.delete(ticket["object_id"])
    if owner == "customer-1":
        assert (response.status_code, response.content) == (204, b"")
    else:
        assert (response.status_code, response.json()) == (404, ticket_not_found(ticket["object_id"]))
        shown = await TenantApi.admin(client, tenant).get(ticket["object_id"])
        assert shown.json() == ticket
