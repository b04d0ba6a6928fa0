"""Schemathesis against the real server: every operation of the served OpenAPI document, with every check
(`--checks all`), generating valid and invalid requests, as an administrator of a fresh tenant (so every role the
routes need). Any 5xx, any response the document does not describe (status, headers, body schema), any request the
document calls valid that the server refuses, and any it calls invalid that the server accepts, fails the suite.

Path parameters are pinned to objects that exist (a ticket, a type, a state, a comment, an inactive webhook and a
delivery of it; DELETE of a ticket or a webhook gets one of its own), and the tenant headers to the tenant's own, so
that requests get past "not found" to the checks that matter. The type and the state the run may change or delete
are not the ones its tickets use. Most schema-valid bodies of the ticket writes get real ids from
tests/e2e/conformance_hooks.py just before they are sent (a real type and field values, the ticket's current etag, a
real state), so that the writes succeed and their success responses are checked too; the test fails unless each of
the main writes succeeded at least once. Three built-in checks conflict with the contract in named cases; the hooks
replace exactly those checks with wrappers that let through only those cases, each with its reason.

Run by hand, against `make run`, with the same settings: the configuration and fixtures written below, then
`CONFORMANCE_FIXTURES=<fixtures> SCHEMATHESIS_HOOKS=tests/e2e/conformance_hooks.py st --config-file <it> run
<url>/schema/openapi.json ...`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from app.config import PROJECT_ROOT
from tests.support import (
    ADMIN_SCOPE,
    API,
    STATES,
    USERS,
    LiveServer,
    TenantApi,
    TenantFactory,
    field_ids,
    list_states,
    new_ticket,
    token,
    upload,
)

HOOKS = Path(__file__).with_name("conformance_hooks.py")
CHECKS_REPLACED_BY_HOOKS = "content_type_conformance,missing_required_header,positive_data_acceptance,use_after_free"
# A few minutes on two cores shared with the server (most of it fuzzing, which this bounds; 35 operations since the
# users routes, and about seven minutes when other test runs share the cores); the run is stopped (and fails) well
# before the test's timeout.
MAX_EXAMPLES = 45
WEBHOOK_MAX_EXAMPLES = 15
RUN_TIMEOUT_SECONDS = 600
# A fixed seed: the same requests on every run, so a failure reproduces (`st replay` or the printed curl).
SEED = 1
# The writes whose success responses the run must have checked: each must have answered 2xx at least once.
MAIN_WRITES = (
    f"POST {API}/ticket",
    f"PATCH {API}/ticket/{{object_id}}/update",
    f"PATCH {API}/ticket/{{object_id}}/status",
    f"PATCH {API}/ticket/{{object_id}}/assign",
)
# A value each field of the REQ type (schemas/templates/request.json) accepts, by field key.
SAMPLES = {
    "title": "Conformance",
    "description": "<p>Checked by Schemathesis</p>",
    "priority": "high",
    "requester_email": "someone@example.com",
    "due_date": "2026-12-24",
    "tags": ["conformance"],
    "counter": 1,
    "source": "web",
    "browser": "Firefox 102.0",
    "os": "MacOS 13.4",
    "product_area": "Dashboard",
}
PENDING_TYPES = {"pending reminder", "pending close"}


def schemathesis_config(
    tenant_id: str,
    realm: str,
    bearer: str,
    path_parameters: dict[str, str],
    operation_parameters: dict[str, tuple[str, str]],
) -> str:
    """`operation_parameters`: operation id -> (path parameter, value) where one operation needs its own object."""
    parameters = {"header.x-tenantid": tenant_id, "header.realmname": realm} | {
        f"path.{name}": value for name, value in path_parameters.items()
    }
    return "\n".join(
        [
            "[parameters]",
            *(f"{json.dumps(name)} = {json.dumps(value)}" for name, value in parameters.items()),
            *(
                line
                for operation_id, (name, value) in operation_parameters.items()
                for line in (
                    "[[operations]]",
                    f"include-operation-id = {json.dumps(operation_id)}",
                    f"parameters = {{ {json.dumps('path.' + name)} = {json.dumps(value)} }}",
                )
            ),
            # The webhook routes' inputs are small (an id, a short body): fewer examples each keep the whole run
            # within its time on a busy machine.
            "[[operations]]",
            'include-tag = "webhooks"',
            f"generation = {{ max-examples = {WEBHOOK_MAX_EXAMPLES} }}",
            "[auth.openapi.BearerToken]",
            f"bearer = {json.dumps(bearer)}",
            # PostgreSQL text cannot hold NUL, and every stored string refuses one with a 400 naming it; the document
            # does not repeat that on each string, so NUL is not generated.
            "[generation]",
            "allow-x00 = false",
        ]
    )


async def test_the_server_conforms_to_its_openapi_document(
    server: LiveServer, tenant_factory: TenantFactory, workspace: Path
) -> None:
    tenant = await tenant_factory.fresh("conformance", builtin_realm=True)
    bearer = token(tenant, roles=tenant.roles["admin"], scope=ADMIN_SCOPE, subject="conformance", ttl=3600)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        admin = TenantApi(http, tenant, bearer)
        request_type = await admin.ticket_type("REQ")  # what tickets are created with
        spare_type = await admin.ticket_type("FAC")  # what the run may change or archive
        ticket = await new_ticket(admin, request_type["id"], {field_ids(request_type)["title"]: "Conformance"})
        doomed = await new_ticket(admin, request_type["id"], {field_ids(request_type)["title"]: "To be deleted"})
        v1_doomed = await new_ticket(admin, request_type["id"], {field_ids(request_type)["title"]: "v1 deletes it"})
        facility = field_ids(spare_type)
        v1_ticket = await new_ticket(admin, spare_type["id"], {facility["category"]: "WATER", facility["title"]: "v1"})
        states = await list_states(admin)
        spare_state = await http.post(
            STATES, headers=admin.headers, json={"name": "conformance spare", "state_type": "open"}
        )
        assert spare_state.status_code == 201, spare_state.text
        comment = await admin.comment(ticket["objectId"], {"content": "Conformance"})
        assert comment.status_code == 201, comment.text
        attachment = await upload(admin, ticket["objectId"], "conformance.txt", b"conformance\n")
        assert attachment.status_code == 201, attachment.text
        # Inactive webhooks (nothing is sent), one for the run to delete, and a delivery (a ping) to retry.
        webhooks = []
        for _ in range(2):
            created = await http.post(
                f"{API}/webhook", headers=admin.headers, json={"url": "http://127.0.0.1:9/conformance", "active": False}
            )
            assert created.status_code == 201, created.text
            webhooks.append(created.json()["id"])
        ping = await http.post(f"{API}/webhook/{webhooks[0]}/test", headers=admin.headers)
        assert ping.status_code == 202, ping.text
        user = await http.post(
            USERS,
            headers=admin.headers,
            json={"email": "conformance@example.com", "password": "conformance password", "role": "agent"},
        )
        assert user.status_code == 201, user.text
        listed = await http.get("/api/v1/ticket_states", headers={"authorization": f"Bearer {bearer}"})
        spare_number = next(state["id"] for state in listed.json() if state["name"] == "conformance spare")
    directory = workspace / f"schemathesis-{tenant.slug}"
    directory.mkdir()
    fixtures = directory / "fixtures.json"
    tally = directory / "responses.tsv"
    fixtures.write_text(json.dumps(hook_fixtures(server.url, admin.headers, request_type, states, tally)))
    config = directory / "schemathesis.toml"
    config.write_text(
        schemathesis_config(
            str(tenant.id),
            tenant.realms[0].name,
            bearer,
            {
                "object_id": ticket["objectId"],
                "type_id": spare_type["id"],
                "state_id": spare_state.json()["id"],
                "comment_id": comment.json()["id"],
                "attachment_id": attachment.json()["id"],
                "webhook_id": webhooks[0],
                "delivery_id": ping.json()["id"],
                "user_id": user.json()["id"],
                "ticket_id": v1_ticket["id"],
                "ticket_state_id": str(spare_number),
            },
            {
                # A DELETE gets an object of its own: once deleted, it is 404 everywhere, and the other operations
                # are to be tried on one that exists.
                "deleteTicket": ("object_id", doomed["objectId"]),
                "deleteWebhook": ("webhook_id", webhooks[1]),
                "v1DeleteTicket": ("ticket_id", v1_doomed["id"]),
                # Seed 004's ticket routes are the request type's; seeds 000/001's (ticket_id above) the facility's.
                "v1GetTicket": ("ticket_id", ticket["id"]),
                "v1PatchTicket": ("ticket_id", ticket["id"]),
                "v1CreateComment": ("ticket_id", ticket["id"]),
            },
        )
    )
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run"),
        f"{server.url}/schema/openapi.json",
        *("--checks", "all", "--exclude-checks", CHECKS_REPLACED_BY_HOOKS),
        *("--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED)),
        # One worker: Hypothesis's introspection of lambdas is not thread-safe.
        *("--workers", "1", "--generation-database", "none", "--no-color"),
        cwd=directory,
        env={
            **os.environ,
            "PYTHONPATH": str(PROJECT_ROOT),
            "SCHEMATHESIS_HOOKS": str(HOOKS),
            "CONFORMANCE_FIXTURES": str(fixtures),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_SECONDS)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    report = output.decode(errors="replace")
    assert process.returncode == 0, report
    assert "61 selected / 61 total" in report, report
    answered = collections.Counter(tuple(line.split("\t")) for line in tally.read_text().splitlines())
    succeeded = {operation for (operation, status), _ in answered.items() if status.startswith("2")}
    assert [write for write in MAIN_WRITES if write not in succeeded] == [], sorted(answered.items())


def hook_fixtures(
    url: str, headers: dict[str, str], ticket_type: dict[str, Any], states: list[dict[str, Any]], tally: Path
) -> dict[str, Any]:
    """What conformance_hooks.py puts into generated requests: the type to create tickets of, with a valid value
    for each field; the states a ticket may move between without a pendingUntil (no workflow on the type); where
    to record each response."""
    return {
        "base_url": url,
        "headers": headers,
        "ticket_type": {
            "id": ticket_type["id"],
            "fields": [
                {key: field[key] for key in ("id", "required", "readOnly", "schema")}
                | {"sample": SAMPLES[field["key"]]}
                for field in ticket_type["fields"]
            ],
        },
        "states": [
            {"id": state["id"], "name": state["name"]}
            for state in states
            if state["active"] and state["state_type"] not in PENDING_TYPES
        ],
        "tally": str(tally),
    }
