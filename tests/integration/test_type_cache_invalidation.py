"""A ticket-type change made through one worker is enforced by every other worker without a restart."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.support import API, LiveServer, TenantApi, TenantSpec, field_ids, make_settings


async def test_type_change_reaches_another_worker(
    server: LiveServer, database_url: str, workspace: Path, alpha: TenantSpec
) -> None:
    async with (
        LiveServer(make_settings(database_url, workspace)) as other_worker,
        httpx.AsyncClient(base_url=server.url) as first,
        httpx.AsyncClient(base_url=other_worker.url) as second,
    ):
        admin = TenantApi.admin(first, alpha)
        agent_on_second = TenantApi.agent(second, alpha)
        field = str(uuid.uuid4())
        definition: dict[str, Any] = {
            "name": "Cache probe",
            "prefix": "CACHE",
            "fields": [{"id": field, "key": "size", "name": "Size", "schema": {"type": "integer", "maximum": 10}}],
        }
        created = await first.post(f"{API}/ticket-type", headers=admin.headers, json=definition)
        assert created.status_code == 201, created.text
        type_id = created.json()["id"]

        # The second worker compiles version 1 (maximum 10) while creating a ticket.
        ticket = await agent_on_second.create(type_id, {field: 5})
        assert ticket.status_code == 201, ticket.text
        object_id, etag = ticket.json()["objectId"], ticket.json()["etag"]
        refused = await agent_on_second.update(object_id, {"etag": etag, "ticketUpdate": {field: 50}})
        assert refused.status_code == 400
        assert refused.json()["validationResult"]["reason"] == {field: "50 is greater than the maximum of 10"}

        # Version 2 through the first worker raises the maximum.
        definition["fields"][0]["schema"] = {"type": "integer", "maximum": 100}
        replaced = await first.put(f"{API}/ticket-type/{type_id}", headers=admin.headers, json=definition)
        assert (replaced.status_code, replaced.json()["version"]) == (200, 2)
        assert field_ids(replaced.json()) == {"size": field}

        # The second worker accepts 50 once the notification arrives, without a restart.
        deadline = time.monotonic() + 5
        while True:
            accepted = await agent_on_second.update(object_id, {"etag": etag, "ticketUpdate": {field: 50}})
            if accepted.status_code == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert accepted.status_code == 200, accepted.text
        fetched = await agent_on_second.get(object_id)
        assert fetched.json()["data"][field] == 50
        assert fetched.json()["ticket_type_version"] == 2
