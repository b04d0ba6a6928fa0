"""Rate limits (issue 12) against the session's real Redis: the X-RateLimit-* headers count down exactly, a client
past its plan gets 429 in the v2 envelope with Retry-After (and a refused request does not count), plans and
per-client plans come from the tenant file (seed 004's defaults when it declares none), writes to one ticket have a
limit of their own, and requests refused by authentication, health and the documentation are not counted.

Every plan here refills far more slowly than a test runs (a request every 12 s or more), so no count depends on
how fast the machine is."""

from __future__ import annotations

import math
import time
from typing import Any

import httpx
import pytest

from tests.support import (
    ME,
    TenantApi,
    TenantFactory,
    auth_headers,
    field_ids,
    new_ticket,
    token,
)

LIMIT = "X-RateLimit-Limit"
REMAINING = "X-RateLimit-Remaining"
RESET = "X-RateLimit-Reset"
# Five requests a minute: one more every 12 seconds.
TIGHT = {"plan": "tight", "plans": {"tight": 5}, "ticket_writes_per_minute": 1000}


def counted(response: httpx.Response) -> tuple[int, int, int]:
    return int(response.headers[LIMIT]), int(response.headers[REMAINING]), int(response.headers[RESET])


def rate_limited(message: str) -> dict[str, Any]:
    return {"error": True, "code": "RATE_LIMIT_EXCEEDED", "message": message, "status": 429}


def uncounted(response: httpx.Response) -> bool:
    return not {LIMIT.lower(), REMAINING.lower(), RESET.lower(), "retry-after"} & set(response.headers)


async def test_the_headers_count_down_exactly_then_429_with_retry_after(
    client: httpx.AsyncClient, tenant_factory: TenantFactory
) -> None:
    tenant = await tenant_factory.fresh("limited", rate_limits=TIGHT)
    headers = auth_headers(tenant, token(tenant, subject="agent-1"))
    before = time.time()
    answers = [await client.get(ME, headers=headers) for _ in range(5)]
    assert [response.status_code for response in answers] == [200] * 5
    assert [counted(response)[:2] for response in answers] == [(5, 4), (5, 3), (5, 2), (5, 1), (5, 0)]
    # Each request takes the bucket 12 s further from empty: the first one's reset is 12 s away.
    resets = [counted(response)[2] for response in answers]
    assert math.ceil(before + 12) <= resets[0] <= math.ceil(time.time() + 12)
    assert resets == [resets[0] + 12 * index for index in range(5)]

    refused = await client.get(ME, headers=headers)
    assert refused.status_code == 429
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 12
    assert refused.json() == rate_limited(f"Rate limit exceeded: 5 requests a minute; retry in {retry_after} s")
    assert counted(refused) == (5, 0, resets[-1])
    # A refused request is not counted: the bucket is where the fifth request left it.
    again = await client.get(ME, headers=headers)
    assert (again.status_code, counted(again)) == (429, (5, 0, resets[-1]))


async def test_each_client_and_each_tenant_has_its_own_count(
    client: httpx.AsyncClient, tenant_factory: TenantFactory
) -> None:
    tenant = await tenant_factory.fresh("limited", rate_limits=TIGHT)
    other_tenant = await tenant_factory.fresh("limited", rate_limits=TIGHT)
    for _ in range(5):
        assert (await client.get(ME, headers=auth_headers(tenant, token(tenant, subject="agent-1")))).status_code == 200
    # Another token of the same subject is the same client.
    assert (await client.get(ME, headers=auth_headers(tenant, token(tenant, subject="agent-1")))).status_code == 429
    second = await client.get(ME, headers=auth_headers(tenant, token(tenant, subject="agent-2")))
    elsewhere = await client.get(ME, headers=auth_headers(other_tenant, token(other_tenant, subject="agent-1")))
    assert [(r.status_code, counted(r)[:2]) for r in (second, elsewhere)] == [(200, (5, 4)), (200, (5, 4))]


async def test_plans_and_per_client_plans_come_from_the_tenant_file(
    client: httpx.AsyncClient, tenant_factory: TenantFactory
) -> None:
    tenant = await tenant_factory.fresh(
        "planned",
        rate_limits={
            "plan": "tight",
            "plans": {"tight": 5, "partner": 1200},
            "clients": {"vip": "premium", "billing": "partner"},
        },
    )
    declares_nothing = await tenant_factory.fresh("planned", rate_limits={})

    async def limit_of(tenant_headers: dict[str, str]) -> tuple[int, int]:
        response = await client.get(ME, headers=tenant_headers)
        assert response.status_code == 200, response.text
        return counted(response)[:2]

    assert await limit_of(auth_headers(tenant, token(tenant, subject="someone"))) == (5, 4)
    assert await limit_of(auth_headers(tenant, token(tenant, subject="vip"))) == (300, 299)
    # A service account is counted by its client id (Keycloak's client_id claim), whatever its subject.
    billing = [token(tenant, subject=f"service-account-billing-{n}", client_id="billing") for n in range(2)]
    assert [await limit_of(auth_headers(tenant, bearer)) for bearer in billing] == [(1200, 1199), (1200, 1198)]
    # Seed 004's standard plan for a tenant that declares none.
    assert await limit_of(auth_headers(declares_nothing, token(declares_nothing))) == (100, 99)


async def test_writes_to_one_ticket_have_their_own_limit_whoever_makes_them(
    client: httpx.AsyncClient, tenant_factory: TenantFactory
) -> None:
    tenant = await tenant_factory.fresh(
        "hammered", rate_limits={"plan": "roomy", "plans": {"roomy": 600}, "ticket_writes_per_minute": 3}
    )
    first, second = TenantApi.agent(client, tenant, "integration-1"), TenantApi.agent(client, tenant, "integration-2")
    request_type = await first.ticket_type("REQ")
    title = field_ids(request_type)["title"]
    ticket = (await new_ticket(first, request_type["id"], {title: "Hammered"}))["objectId"]
    spare = (await new_ticket(first, request_type["id"], {title: "Spared"}))["objectId"]

    writes = [await api.comment(ticket, {"content": f"note {n}"}) for n, api in enumerate((first, second, first))]
    assert [response.status_code for response in writes] == [201, 201, 201]
    # The ticket's limit is the one closest to running out: it is what the headers show.
    assert [counted(response)[:2] for response in writes] == [(3, 2), (3, 1), (3, 0)]

    etag = (await second.get(ticket)).json()["etag"]
    refused = [
        await second.comment(ticket, {"content": "one too many"}),
        await second.update(ticket, {"etag": etag, "ticketUpdate": {title: "Changed"}}),
    ]
    for response in refused:
        assert response.status_code == 429, response.text
        retry_after = int(response.headers["retry-after"])
        assert 1 <= retry_after <= 20
        assert response.json() == rate_limited(
            f"Too many writes to ticket {ticket}: 3 a minute; retry in {retry_after} s"
        )
        assert counted(response)[:2] == (3, 0)
    # Nothing was written; reads of the ticket and writes to another one go on.
    read = await second.get(ticket)
    assert (read.status_code, read.json()["etag"]) == (200, etag)
    assert len((await first.comments(ticket)).json()["data"]) == 3
    assert (await second.comment(spare, {"content": "fine"})).status_code == 201


async def test_requests_refused_by_authentication_health_and_docs_are_not_counted(
    client: httpx.AsyncClient, tenant_factory: TenantFactory
) -> None:
    tenant = await tenant_factory.fresh("limited", rate_limits=TIGHT)
    anonymous = await client.get(ME, headers=auth_headers(tenant, None))
    customer_only = await client.get(
        f"{ME[: -len('/me')]}/ticket-state",
        headers=auth_headers(tenant, token(tenant, roles=[], scope="", subject="agent-1")),
    )
    assert (anonymous.status_code, customer_only.status_code) == (401, 401)
    for path in ("/health/live", "/health/ready", "/schema/openapi.json"):
        assert uncounted(await client.get(path)), path
    assert uncounted(anonymous) and uncounted(customer_only)
    first = await client.get(ME, headers=auth_headers(tenant, token(tenant, subject="agent-1")))
    assert counted(first)[:2] == (5, 4)


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_every_answer_that_counts_carries_the_headers_errors_too(
    client: httpx.AsyncClient, tenant_factory: TenantFactory, method: str
) -> None:
    tenant = await tenant_factory.fresh("limited", rate_limits=TIGHT)
    api = TenantApi.agent(client, tenant)
    if method == "GET":
        response = await api.get("REQ-9999")
        assert response.status_code == 404
    else:
        response = await client.post(f"{ME[: -len('/me')]}/ticket?type=agent&module=ticketing", headers=api.headers)
        assert response.status_code == 400
    assert counted(response)[:2] == (5, 4)
