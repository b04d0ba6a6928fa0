"""Schemathesis against the real server: every operation of the served OpenAPI document, with every check
(`--checks all`), generating valid and invalid requests, as an administrator of a fresh tenant (so every role the
routes need). Any 5xx, any response the document does not describe (status, headers, body schema), any request the
document calls valid that the server refuses, and any it calls invalid that the server accepts, fails the suite.

Path parameters are pinned to objects that exist (a ticket, a type, a state), and the tenant headers to the
tenant's own, so that requests get past "not found" to the checks that matter. Three built-in checks conflict with
fixed parts of the contract in a few named cases; tests/e2e/conformance_hooks.py replaces exactly those checks with
wrappers that let through only those cases (and assert their contract answer where there is one).

Run by hand, against `make run`, with the same settings: the configuration written below, then
`SCHEMATHESIS_HOOKS=tests/e2e/conformance_hooks.py st --config-file <it> run <url>/schema/openapi.json ...`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx

from app.config import PROJECT_ROOT
from tests.support import (
    ADMIN_SCOPE,
    STATES,
    LiveServer,
    TenantApi,
    TenantFactory,
    field_ids,
    new_ticket,
    token,
    upload,
)

HOOKS = Path(__file__).with_name("conformance_hooks.py")
CHECKS_REPLACED_BY_HOOKS = "missing_required_header,positive_data_acceptance,use_after_free"
# About a minute on two cores shared with the server; the run is stopped (and fails) well before the timeout.
MAX_EXAMPLES = 60
RUN_TIMEOUT_SECONDS = 300
# A fixed seed: the same requests on every run, so a failure reproduces (`st replay` or the printed curl).
SEED = 1


def schemathesis_config(tenant_id: str, realm: str, bearer: str, path_parameters: dict[str, str]) -> str:
    parameters = {"header.x-tenantid": tenant_id, "header.realmname": realm} | {
        f"path.{name}": value for name, value in path_parameters.items()
    }
    return "\n".join(
        [
            "[parameters]",
            *(f"{json.dumps(name)} = {json.dumps(value)}" for name, value in parameters.items()),
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
    tenant = await tenant_factory.fresh("conformance")
    bearer = token(tenant, roles=tenant.roles["admin"], scope=ADMIN_SCOPE, subject="conformance", ttl=3600)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        admin = TenantApi(http, tenant, bearer)
        request_type = await admin.ticket_type("REQ")
        ticket = await new_ticket(admin, request_type["id"], {field_ids(request_type)["title"]: "Conformance"})
        states = (await http.get(STATES, headers=admin.headers)).json()["data"]
        attachment = (await upload(admin, ticket["objectId"], "conformance.txt", b"conformance\n")).json()
    directory = workspace / f"schemathesis-{tenant.slug}"
    directory.mkdir()
    config = directory / "schemathesis.toml"
    config.write_text(
        schemathesis_config(
            str(tenant.id),
            tenant.realms[0].name,
            bearer,
            {
                "object_id": ticket["objectId"],
                "type_id": request_type["id"],
                "state_id": states[0]["id"],
                "attachment_id": attachment["id"],
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
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "SCHEMATHESIS_HOOKS": str(HOOKS)},
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
    assert "24 selected / 24 total" in report, report
