"""Who may call which route: one table with every /api/v2 route of the app's route table, what it requires, and how
to build a valid request for it against real objects of the test's own tenant.

`test_the_table_lists_exactly_the_apps_routes` reads the routes from the running app (Litestar's route table,
without the OPTIONS handlers Litestar generates and without HEAD), so a new route without an entry, or an entry
for a route that is gone, fails the suite.

For every route (and every variant of a route's request), `test_who_may_call_the_route` checks, on the wire: no
token is 401 AUTHENTICATION_REQUIRED; a garbage, tampered or stranger-signed token is 401 INVALID_TOKEN; another
tenant's valid token with this tenant's x-tenantid, and this tenant's token with the other's, are 404 Tenant not
found; for routes that need a permission, a token lacking the role (including role names that belong to the other
tenant, and the customer role where customers may not call) or lacking the scope is 401 USER_PERMISSION_FAILURE
naming the action; none of these refused calls changes anything in either tenant; every role that grants the
permission, with just the route's scope, gets through; and where customers may call, a customer's token with the
route's scope gets through too (to a 404 for a ticket it did not create).
Besides a valid request on a real object, most routes have a variant naming an absent object or sending input the
route refuses: the caller is refused just the same (who may call is decided first), and once let through gets the
404 or 400.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pytest
from litestar.routes import HTTPRoute

from app.auth.session import CSRF_HEADER, csrf_token
from tests.support import (
    ADMIN_SCOPE,
    AGENT_SCOPE,
    API,
    AUTHENTICATION_REQUIRED,
    BEARER_CHALLENGE,
    CATALOG,
    FORM_CONTENT_TYPE,
    INSUFFICIENT_SCOPE_CHALLENGE,
    INVALID_TOKEN,
    INVALID_TOKEN_CHALLENGE,
    STATES,
    TENANT_NOT_FOUND,
    TICKETS,
    TYPES,
    USERS,
    V1,
    LiveServer,
    SigningKey,
    TenantApi,
    TenantFactory,
    TenantSpec,
    auth_headers,
    by_name,
    claims_for,
    create_type,
    editable,
    field_ids,
    find_litestar,
    form,
    new_definition,
    permission_failure,
    sign,
    tampered_signature,
    token,
    upload,
    v1_headers,
)

READ_SCOPE = "tickets:read"
WRITE_SCOPE = "tickets:write"
ADMIN_ONLY_SCOPE = "tickets:admin"
# "public": called without a token (sign-in); each variant is checked for its status only.
Requirement = Literal["public", "authenticated", "read", "write", "admin", "delete"]
# The one scope each permission needs.
SCOPE_OF: dict[Requirement, str] = {
    "public": "",
    "authenticated": "",
    "read": READ_SCOPE,
    "write": WRITE_SCOPE,
    "admin": ADMIN_ONLY_SCOPE,
    "delete": WRITE_SCOPE,
}


@dataclass
class Call:
    method: str
    path: str  # under API
    params: dict[str, str] | None = None
    body: Any = None  # sent as JSON
    form: bytes | None = None  # sent as multipart/form-data instead
    headers: dict[str, str] = field(default_factory=dict)


class World:
    """The objects a request needs, in the test's tenant (`owner`); `other` is a second tenant."""

    def __init__(self, http: httpx.AsyncClient, owner: TenantSpec, other: TenantSpec) -> None:
        self.http = http
        self.owner = owner
        self.other = other
        self.admin = TenantApi.admin(http, owner)
        self._made = 0
        self._ticket: dict[str, Any] | None = None
        self._comment: dict[str, Any] | None = None
        self._attachment: dict[str, Any] | None = None
        self._webhook: dict[str, Any] | None = None
        self._user: dict[str, Any] | None = None

    def name(self) -> str:
        """A new name (or type prefix) for each object a test creates: A, B, ... Z, AA, AB, ..."""
        self._made += 1
        number, letters = self._made, ""
        while number:
            number, rest = divmod(number - 1, 26)
            letters = chr(ord("A") + rest) + letters
        return f"MX{letters}"

    async def request_type(self) -> dict[str, Any]:
        return await self.admin.ticket_type("REQ")

    async def new_ticket(self) -> dict[str, Any]:
        """A new REQ ticket's GET document."""
        request_type = await self.request_type()
        created = await self.admin.create(request_type["id"], {field_ids(request_type)["title"]: "matrix"})
        assert created.status_code == 201, created.text
        shown = await self.admin.get(created.json()["objectId"])
        assert shown.status_code == 200, shown.text
        document: dict[str, Any] = shown.json()
        return document

    async def ticket(self) -> dict[str, Any]:
        """The ticket the reads read (made once)."""
        if self._ticket is None:
            self._ticket = await self.new_ticket()
        return self._ticket

    async def comment(self) -> dict[str, Any]:
        """A comment on the ticket the reads read (made once)."""
        if self._comment is None:
            response = await self.admin.comment((await self.ticket())["object_id"], {"content": "matrix"})
            assert response.status_code == 201, response.text
            self._comment = response.json()
        return self._comment

    async def new_attachment(self) -> dict[str, Any]:
        """A new file on the ticket the reads read."""
        response = await upload(self.admin, (await self.ticket())["object_id"], "matrix.txt", b"matrix\n")
        assert response.status_code == 201, response.text
        attachment: dict[str, Any] = response.json()
        return attachment

    async def attachment(self) -> dict[str, Any]:
        """The file the reads read (made once)."""
        if self._attachment is None:
            self._attachment = await self.new_attachment()
        return self._attachment

    async def new_webhook(self) -> dict[str, Any]:
        """A new webhook subscription of the owner's, inactive (nothing is sent to its closed loopback port)."""
        body = {"url": "http://127.0.0.1:9/matrix", "active": False}
        response = await self.http.post(f"{API}/webhook", headers=self.admin.headers, json=body)
        assert response.status_code == 201, response.text
        webhook: dict[str, Any] = response.json()
        return webhook

    async def webhook(self) -> dict[str, Any]:
        """The webhook the reads read (made once)."""
        if self._webhook is None:
            self._webhook = await self.new_webhook()
        return self._webhook

    async def new_user(self) -> dict[str, Any]:
        """A new user of the owner's builtin realm, with the password USER_PASSWORD."""
        body = {"email": f"{self.name().lower()}@example.com", "password": USER_PASSWORD, "role": "agent"}
        response = await self.http.post(USERS, json=body, headers=self.admin.headers)
        assert response.status_code == 201, response.text
        user: dict[str, Any] = response.json()
        return user

    async def user(self) -> dict[str, Any]:
        """The user the reads read (made once)."""
        if self._user is None:
            self._user = await self.new_user()
        return self._user

    async def new_type(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """A new ticket type of the owner's: its definition and the created type."""
        definition = new_definition(prefix=self.name())
        return definition, await create_type(self.http, self.admin, definition)

    async def new_state(self) -> dict[str, Any]:
        response = await self.http.post(
            STATES, headers=self.admin.headers, json={"name": self.name(), "state_type": "open"}
        )
        assert response.status_code == 201, response.text
        state: dict[str, Any] = response.json()
        return state

    async def snapshot(self) -> dict[str, Any]:
        """Everything a refused call could have changed, in both tenants: their types (archived ones too), states,
        tickets (with etags, states and data) and each ticket's history."""
        seen: dict[str, Any] = {}
        for tenant in (self.owner, self.other):
            api = TenantApi(self.http, tenant, token(tenant, roles=every_role(tenant), scope=ADMIN_SCOPE))
            reads = {
                "types": (TYPES, {"include_archived": "true"}),
                "states": (STATES, None),
                "tickets": (TICKETS, {"per_page": "100"}),
                "users": (USERS, {"per_page": "100"}),
            }
            for label, (path, params) in reads.items():
                response = await self.http.get(path, params=params, headers=api.headers)
                assert response.status_code == 200, response.text
                seen[f"{tenant.slug} {label}"] = response.json()
            # Users of external realms are added (and their last-seen time moved) by any authenticated call, refused
            # or not: only what the routes change counts.
            seen[f"{tenant.slug} users"] = [
                {key: user[key] for key in ("id", "email", "name", "role", "status")}
                for user in seen[f"{tenant.slug} users"]["data"]
                if user["realm"] not in {realm.name for realm in tenant.realms if not realm.builtin}
            ]
            for ticket in seen[f"{tenant.slug} tickets"]["data"]:
                history = await self.http.get(f"{TICKETS}/{ticket['object_id']}/history", headers=api.headers)
                assert history.status_code == 200, history.text
                seen[f"{tenant.slug} history of {ticket['object_id']}"] = history.json()
            webhooks = await self.http.get(f"{API}/webhook", headers=api.headers)
            assert webhooks.status_code == 200, webhooks.text
            seen[f"{tenant.slug} webhooks"] = webhooks.json()
            for webhook in webhooks.json()["data"]:
                sent = await self.http.get(f"{API}/webhook/{webhook['id']}/deliveries", headers=api.headers)
                assert sent.status_code == 200, sent.text
                seen[f"{tenant.slug} deliveries of {webhook['id']}"] = sent.json()
        return seen


Build = Callable[[World], Awaitable[Call]]


@dataclass(frozen=True)
class Route:
    requires: Requirement
    # The action the refusal names ("You do not have the permission to <action>"); None for `authenticated`.
    action: str | None
    # Variant name -> how to build the request (a fresh target each time for writes) and the status of the call
    # once it gets through. "valid" is a valid request on a real object of the tenant; "absent"/"invalid" variants
    # name an object that does not exist or send input the route refuses, to show that who may call comes first.
    variants: dict[str, tuple[Build, int]] = field(default_factory=dict)
    # Where customers may call the route: the status a customer's call gets, per variant (the test's objects are not
    # the customer's). Empty: a customer is refused like any caller without the permission.
    customers: dict[str, int] = field(default_factory=dict)


# Targets that do not exist: what a route answers once the caller is let through.
ABSENT_ID = "00000000-0000-4000-8000-00000000abcd"
ABSENT_TICKET = "REQ-99999999"


def _fixed(
    method: str,
    path: str,
    params: dict[str, str] | None = None,
    body: Any = None,
    form: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Build:
    async def build(_: World) -> Call:
        return Call(method, path, params, body, form, headers or {})

    return build


def _get(path: Callable[[World], Awaitable[str]] | str) -> Build:
    async def build(world: World) -> Call:
        return Call("GET", path if isinstance(path, str) else await path(world))

    return build


async def _ticket_path(world: World, suffix: str = "") -> str:
    return f"/ticket/{(await world.ticket())['object_id']}{suffix}"


async def _show_ticket(world: World) -> Call:
    return Call("GET", await _ticket_path(world))


async def _show_ticket_including_attachments(world: World) -> Call:
    return Call("GET", await _ticket_path(world), params={"include": "attachments"})


async def _show_ticket_as_of(world: World) -> Call:
    return Call("GET", await _ticket_path(world), params={"asOf": (await world.ticket())["updated_at"]})


async def _show_ticket_as_of_etag(world: World) -> Call:
    return Call("GET", await _ticket_path(world), params={"asOfEtag": (await world.ticket())["etag"]})


async def _history(world: World) -> Call:
    return Call("GET", await _ticket_path(world, "/history"))


async def _show_ticket_with_comments(world: World) -> Call:
    return Call("GET", await _ticket_path(world), params={"include": "comments"})


async def _add_comment(world: World) -> Call:
    return Call("POST", await _ticket_path(world, "/comments"), body={"content": "<p>matrix</p>"})


async def _add_empty_comment(world: World) -> Call:
    return Call("POST", await _ticket_path(world, "/comments"), body={"content": "<script>x</script>"})


async def _list_comments(world: World) -> Call:
    return Call("GET", await _ticket_path(world, "/comments"))


async def _show_comment(world: World) -> Call:
    return Call("GET", await _ticket_path(world, f"/comments/{(await world.comment())['id']}"))


async def _show_absent_comment(world: World) -> Call:
    return Call("GET", await _ticket_path(world, f"/comments/{ABSENT_ID}"))


async def _create_ticket(world: World) -> Call:
    request_type = await world.request_type()
    body = {"ticketTypeId": request_type["id"], "data": {field_ids(request_type)["title"]: "matrix"}}
    return Call("POST", "/ticket", params=CATALOG, body=body)


async def _update_ticket(world: World) -> Call:
    ticket = await world.new_ticket()
    counter = field_ids(await world.request_type())["counter"]
    body = {"etag": ticket["etag"], "ticketUpdate": {counter: 1}}
    return Call("PATCH", f"/ticket/{ticket['object_id']}/update", params=CATALOG, body=body)


async def _change_status(world: World) -> Call:
    ticket = await world.new_ticket()
    return Call("PATCH", f"/ticket/{ticket['object_id']}/status", body={"etag": ticket["etag"], "state": "open"})


async def _assign_ticket(world: World) -> Call:
    ticket = await world.new_ticket()
    return Call("PATCH", f"/ticket/{ticket['object_id']}/assign", body={"etag": ticket["etag"], "assignee": "matrix"})


async def _assign_a_bad_subject(world: World) -> Call:
    ticket = await world.ticket()
    return Call("PATCH", f"/ticket/{ticket['object_id']}/assign", body={"etag": ticket["etag"], "assignee": ""})


async def _delete_ticket(world: World) -> Call:
    ticket = await world.new_ticket()
    return Call("DELETE", f"/ticket/{ticket['object_id']}", headers={"If-Match": f'"{ticket["etag"]}"'})


async def _delete_with_a_stale_if_match(world: World) -> Call:
    ticket = await world.ticket()
    return Call("DELETE", f"/ticket/{ticket['object_id']}", headers={"If-Match": f'"{ABSENT_ID}"'})


async def _type_path(world: World, suffix: str = "") -> str:
    return f"/ticket-type/{(await world.request_type())['id']}{suffix}"


async def _create_type(world: World) -> Call:
    return Call("POST", "/ticket-type", body=new_definition(prefix=world.name()))


async def _replace_type(world: World) -> Call:
    definition, created = await world.new_type()
    return Call("PUT", f"/ticket-type/{created['id']}", body={**definition, "name": "Replaced"})


async def _archive_type(world: World) -> Call:
    _, created = await world.new_type()
    return Call("DELETE", f"/ticket-type/{created['id']}")


async def _closed_state_path(world: World) -> str:
    return f"/ticket-state/{(await by_name(world.admin, 'closed'))['id']}"


async def _change_state(world: World) -> Call:
    state = await world.new_state()
    return Call("PUT", f"/ticket-state/{state['id']}", body=editable(state, note="changed"))


async def _delete_state(world: World) -> Call:
    state = await world.new_state()
    return Call("DELETE", f"/ticket-state/{state['id']}")


async def _create_state(world: World) -> Call:
    return Call("POST", "/ticket-state", body={"name": world.name(), "state_type": "open"})


async def _create_ticket_of_an_absent_type(_: World) -> Call:
    return Call("POST", "/ticket", params=CATALOG, body={"ticketTypeId": ABSENT_ID, "data": {}})


async def _update_absent_ticket(_: World) -> Call:
    # An unknown field: the values are checked before the ticket is looked up, so this is a 400, not a 404.
    body = {"etag": ABSENT_ID, "ticketUpdate": {ABSENT_ID: "x"}}
    return Call("PATCH", f"/ticket/{ABSENT_TICKET}/update", params=CATALOG, body=body)


async def _replace_absent_type(world: World) -> Call:
    return Call("PUT", f"/ticket-type/{ABSENT_ID}", body=new_definition(prefix=world.name()))


async def _change_absent_state(world: World) -> Call:
    state = await by_name(world.admin, "closed")
    return Call("PUT", f"/ticket-state/{ABSENT_ID}", body=editable(state, name=world.name()))


async def _upload_attachment(world: World) -> Call:
    return Call("POST", await _ticket_path(world, "/attachments"), form=form("up.txt", b"uploaded\n", "text/plain"))


async def _list_attachments(world: World) -> Call:
    return Call("GET", await _ticket_path(world, "/attachments"))


async def _download_attachment(world: World) -> Call:
    return Call("GET", f"/attachments/{(await world.attachment())['id']}")


async def _delete_attachment(world: World) -> Call:
    return Call("DELETE", f"/attachments/{(await world.new_attachment())['id']}")


async def _upload_without_a_form(world: World) -> Call:
    return Call("POST", await _ticket_path(world, "/attachments"), body={"file": "not a form"})


async def _webhook_path(world: World, suffix: str = "") -> str:
    return f"/webhook/{(await world.webhook())['id']}{suffix}"


async def _change_webhook(world: World) -> Call:
    return Call("PUT", f"/webhook/{(await world.new_webhook())['id']}", body={"description": "changed"})


async def _change_webhook_to_a_private_url(world: World) -> Call:
    return Call("PUT", await _webhook_path(world), body={"url": "https://10.0.0.1/hook"})


async def _delete_webhook(world: World) -> Call:
    return Call("DELETE", f"/webhook/{(await world.new_webhook())['id']}")


async def _rotate_webhook(world: World) -> Call:
    return Call("POST", f"/webhook/{(await world.new_webhook())['id']}/rotate")


async def _retry_delivery(world: World) -> Call:
    webhook = (await world.new_webhook())["id"]
    ping = await world.http.post(f"{API}/webhook/{webhook}/test", headers=world.admin.headers)
    assert ping.status_code == 202, ping.text
    return Call("POST", f"/webhook/{webhook}/deliveries/{ping.json()['id']}/retry")


async def _replay(world: World) -> Call:
    ticket = await world.ticket()
    return Call("POST", await _webhook_path(world, "/replay"), body={"ticket": ticket["object_id"], "from_sequence": 1})


async def _replay_without_range(world: World) -> Call:
    return Call("POST", await _webhook_path(world, "/replay"), body={})


async def _test_webhook(world: World) -> Call:
    return Call("POST", await _webhook_path(world, "/test"))


async def _user_path(world: World) -> str:
    return f"/users/{(await world.user())['id']}"


async def _create_user(world: World) -> Call:
    return Call(
        "POST",
        "/users",
        body={"email": f"{world.name().lower()}@example.com", "password": USER_PASSWORD, "role": "agent"},
    )


async def _change_user(world: World) -> Call:
    return Call("PUT", f"/users/{(await world.new_user())['id']}", body={"role": "customer"})


async def _deactivate_user(world: World) -> Call:
    return Call("DELETE", f"/users/{(await world.new_user())['id']}")


async def _sign_in(world: World) -> Call:
    user = await world.user()
    body = {"email": user["email"], "password": USER_PASSWORD}
    return Call("POST", "/auth/login", body=body, headers={"x-tenantid": str(world.owner.id)})


async def _accept_invitation(world: World) -> Call:
    body = {"email": f"{world.name().lower()}@example.com", "role": "agent"}
    response = await world.http.post(USERS, json=body, headers=world.admin.headers)
    assert response.status_code == 201, response.text
    accepting = {"token": response.json()["invitation"]["token"], "password": USER_PASSWORD}
    return Call("POST", "/auth/invitation", body=accepting, headers={"x-tenantid": str(world.owner.id)})


async def _accept_unknown_invitation(world: World) -> Call:
    body = {"token": "x" * 43, "password": USER_PASSWORD}
    return Call("POST", "/auth/invitation", body=body, headers={"x-tenantid": str(world.owner.id)})


async def _sign_in_wrongly(world: World) -> Call:
    body = {"email": (await world.user())["email"], "password": "not the password"}
    return Call("POST", "/auth/login", body=body, headers={"x-tenantid": str(world.owner.id)})


# Every /api/v2 route: "METHOD path" (the path under /api/v2/ticketing, parameters without their types) -> entry.
ROUTES: dict[str, Route] = {
    "GET /me": Route("authenticated", None, {"valid": (_get("/me"), 200)}),
    "GET /ticket-type": Route(
        "read",
        "read ticket types",
        {
            "valid": (_get("/ticket-type"), 200),
            "invalid query": (_fixed("GET", "/ticket-type", {"include_archived": "maybe"}), 400),
        },
        customers={"valid": 200, "invalid query": 400},
    ),
    "GET /ticket-type/{type_id}": Route(
        "read",
        "read ticket types",
        {"valid": (_get(_type_path), 200), "absent": (_fixed("GET", f"/ticket-type/{ABSENT_ID}"), 404)},
        customers={"valid": 200, "absent": 404},
    ),
    "GET /ticket-type/{type_id}/schema": Route(
        "read",
        "read ticket types",
        {
            "valid": (_get(lambda world: _type_path(world, "/schema")), 200),
            "absent": (_fixed("GET", f"/ticket-type/{ABSENT_ID}/schema"), 404),
        },
        customers={"valid": 200, "absent": 404},
    ),
    "POST /ticket-type": Route(
        "admin",
        "administer ticket types",
        {
            "valid": (_create_type, 201),
            "invalid definition": (_fixed("POST", "/ticket-type", body=new_definition(prefix="lower")), 400),
        },
    ),
    "PUT /ticket-type/{type_id}": Route(
        "admin", "administer ticket types", {"valid": (_replace_type, 200), "absent": (_replace_absent_type, 404)}
    ),
    "DELETE /ticket-type/{type_id}": Route(
        "admin",
        "administer ticket types",
        {"valid": (_archive_type, 200), "absent": (_fixed("DELETE", f"/ticket-type/{ABSENT_ID}"), 404)},
    ),
    "GET /ticket": Route(
        "read",
        "read tickets",
        {
            "valid": (_get("/ticket"), 200),
            "search": (_fixed("GET", "/ticket", {"q": "printer", "state": "new", "sort": "updated_at"}), 200),
            "invalid query": (_fixed("GET", "/ticket", {"per_page": "0"}), 400),
            "unknown state": (_fixed("GET", "/ticket", {"state": "no such state"}), 400),
        },
        # A customer lists only the tickets it created: none of the test's (tests/integration/test_ticket_search.py).
        customers={"valid": 200, "search": 200, "invalid query": 400, "unknown state": 400},
    ),
    "POST /ticket": Route(
        "write",
        "create a ticket",
        {"valid": (_create_ticket, 201), "absent type": (_create_ticket_of_an_absent_type, 400)},
        customers={"valid": 201, "absent type": 400},
    ),
    "GET /ticket/{object_id}": Route(
        "read",
        "read tickets",
        {
            "valid": (_show_ticket, 200),
            "asOf": (_show_ticket_as_of, 200),
            "asOfEtag": (_show_ticket_as_of_etag, 200),
            "include=comments": (_show_ticket_with_comments, 200),
            "include=attachments": (_show_ticket_including_attachments, 200),
            "unknown include": (_fixed("GET", f"/ticket/{ABSENT_TICKET}", {"include": "everything"}), 400),
            "absent": (_fixed("GET", f"/ticket/{ABSENT_TICKET}"), 404),
            "absent asOf": (_fixed("GET", f"/ticket/{ABSENT_TICKET}", {"asOf": "2999-01-01T00:00:00Z"}), 404),
            "absent asOfEtag": (_fixed("GET", f"/ticket/{ABSENT_TICKET}", {"asOfEtag": ABSENT_ID}), 404),
        },
        customers={
            **dict.fromkeys(
                (
                    *("valid", "asOf", "asOfEtag", "include=comments", "include=attachments"),
                    *("absent", "absent asOf", "absent asOfEtag"),
                ),
                404,
            ),
            "unknown include": 400,
        },
    ),
    "PATCH /ticket/{object_id}/update": Route(
        "write", "update the ticket", {"valid": (_update_ticket, 200), "absent": (_update_absent_ticket, 400)}
    ),
    "PATCH /ticket/{object_id}/status": Route(
        "write",
        "change the ticket status",
        {
            "valid": (_change_status, 200),
            "absent": (
                _fixed("PATCH", f"/ticket/{ABSENT_TICKET}/status", body={"etag": ABSENT_ID, "state": "open"}),
                404,
            ),
        },
    ),
    "PATCH /ticket/{object_id}/assign": Route(
        "write",
        "assign the ticket",
        {
            "valid": (_assign_ticket, 200),
            "absent": (
                _fixed("PATCH", f"/ticket/{ABSENT_TICKET}/assign", body={"etag": ABSENT_ID, "assignee": None}),
                404,
            ),
            "invalid subject": (_assign_a_bad_subject, 400),
        },
    ),
    "DELETE /ticket/{object_id}": Route(
        "delete",
        "delete the ticket",
        {
            "valid": (_delete_ticket, 204),
            "absent": (_fixed("DELETE", f"/ticket/{ABSENT_TICKET}"), 404),
            "stale If-Match": (_delete_with_a_stale_if_match, 412),
        },
    ),
    "GET /ticket/{object_id}/history": Route(
        "read",
        "read tickets",
        {"valid": (_history, 200), "absent": (_fixed("GET", f"/ticket/{ABSENT_TICKET}/history"), 404)},
        customers={"valid": 404, "absent": 404},
    ),
    "GET /ticket-state": Route(
        "read", "read ticket states", {"valid": (_get("/ticket-state"), 200)}, customers={"valid": 200}
    ),
    # Customers' access to the comment routes (their own tickets only): tests/integration/test_comments.py.
    "POST /ticket/{object_id}/comments": Route(
        "write",
        "comment on tickets",
        {
            "valid": (_add_comment, 201),
            "absent": (_fixed("POST", f"/ticket/{ABSENT_TICKET}/comments", body={"content": "x"}), 404),
            "invalid (no text once sanitised)": (_add_empty_comment, 400),
        },
        customers={"valid": 404, "absent": 404, "invalid (no text once sanitised)": 400},
    ),
    "GET /ticket/{object_id}/comments": Route(
        "read",
        "read tickets",
        {
            "valid": (_list_comments, 200),
            "absent": (_fixed("GET", f"/ticket/{ABSENT_TICKET}/comments"), 404),
            "invalid query": (_fixed("GET", f"/ticket/{ABSENT_TICKET}/comments", {"per_page": "0"}), 400),
        },
        customers={"valid": 404, "absent": 404, "invalid query": 400},
    ),
    "GET /ticket/{object_id}/comments/{comment_id}": Route(
        "read",
        "read tickets",
        {"valid": (_show_comment, 200), "absent": (_show_absent_comment, 404)},
        customers={"valid": 404, "absent": 404},
    ),
    # Customers' access to the attachment routes (their own tickets only): tests/integration/test_attachments.py.
    "POST /ticket/{object_id}/attachments": Route(
        "write",
        "upload attachments",
        {
            "valid": (_upload_attachment, 201),
            "absent": (
                _fixed("POST", f"/ticket/{ABSENT_TICKET}/attachments", form=form("a.txt", b"a\n", "text/plain")),
                404,
            ),
            "invalid (not a form)": (_upload_without_a_form, 400),
        },
        # Not the customer's ticket: that comes before what is wrong with the body.
        customers={"valid": 404, "absent": 404, "invalid (not a form)": 404},
    ),
    "GET /ticket/{object_id}/attachments": Route(
        "read",
        "read attachments",
        {
            "valid": (_list_attachments, 200),
            "absent": (_fixed("GET", f"/ticket/{ABSENT_TICKET}/attachments"), 404),
        },
        customers={"valid": 404, "absent": 404},
    ),
    "GET /attachments/{attachment_id}": Route(
        "read",
        "read attachments",
        {"valid": (_download_attachment, 200), "absent": (_fixed("GET", f"/attachments/{ABSENT_ID}"), 404)},
        customers={"valid": 404, "absent": 404},
    ),
    "DELETE /attachments/{attachment_id}": Route(
        "write",
        "delete attachments",
        {"valid": (_delete_attachment, 204), "absent": (_fixed("DELETE", f"/attachments/{ABSENT_ID}"), 404)},
        customers={"valid": 404, "absent": 404},
    ),
    "GET /ticket-state/{state_id}": Route(
        "read",
        "read ticket states",
        {"valid": (_get(_closed_state_path), 200), "absent": (_fixed("GET", f"/ticket-state/{ABSENT_ID}"), 404)},
        customers={"valid": 200, "absent": 404},
    ),
    "POST /ticket-state": Route(
        "admin",
        "administer ticket states",
        {
            "valid": (_create_state, 201),
            "invalid (a name taken)": (
                _fixed("POST", "/ticket-state", body={"name": "Closed", "state_type": "open"}),
                400,
            ),
        },
    ),
    "PUT /ticket-state/{state_id}": Route(
        "admin", "administer ticket states", {"valid": (_change_state, 200), "absent": (_change_absent_state, 404)}
    ),
    "DELETE /ticket-state/{state_id}": Route(
        "admin",
        "administer ticket states",
        {"valid": (_delete_state, 204), "absent": (_fixed("DELETE", f"/ticket-state/{ABSENT_ID}"), 404)},
    ),
    "GET /webhook": Route("admin", "administer webhooks", {"valid": (_get("/webhook"), 200)}),
    "POST /webhook": Route(
        "admin",
        "administer webhooks",
        {
            "valid": (_fixed("POST", "/webhook", body={"url": "http://127.0.0.1:9/matrix", "active": False}), 201),
            "invalid (a private address)": (_fixed("POST", "/webhook", body={"url": "https://10.0.0.1/"}), 400),
        },
    ),
    "GET /webhook/{webhook_id}": Route(
        "admin",
        "administer webhooks",
        {"valid": (_get(_webhook_path), 200), "absent": (_fixed("GET", f"/webhook/{ABSENT_ID}"), 404)},
    ),
    "PUT /webhook/{webhook_id}": Route(
        "admin",
        "administer webhooks",
        {
            "valid": (_change_webhook, 200),
            "absent": (_fixed("PUT", f"/webhook/{ABSENT_ID}", body={"description": "x"}), 404),
            "invalid (a private address)": (_change_webhook_to_a_private_url, 400),
        },
    ),
    "DELETE /webhook/{webhook_id}": Route(
        "admin",
        "administer webhooks",
        {"valid": (_delete_webhook, 204), "absent": (_fixed("DELETE", f"/webhook/{ABSENT_ID}"), 404)},
    ),
    "POST /webhook/{webhook_id}/rotate": Route(
        "admin",
        "administer webhooks",
        {"valid": (_rotate_webhook, 200), "absent": (_fixed("POST", f"/webhook/{ABSENT_ID}/rotate"), 404)},
    ),
    "GET /webhook/{webhook_id}/deliveries": Route(
        "admin",
        "administer webhooks",
        {
            "valid": (_get(lambda world: _webhook_path(world, "/deliveries")), 200),
            "absent": (_fixed("GET", f"/webhook/{ABSENT_ID}/deliveries"), 404),
            "invalid query": (_fixed("GET", f"/webhook/{ABSENT_ID}/deliveries", {"per_page": "0"}), 400),
        },
    ),
    "POST /webhook/{webhook_id}/deliveries/{delivery_id}/retry": Route(
        "admin",
        "administer webhooks",
        {
            "valid": (_retry_delivery, 202),
            "absent": (_fixed("POST", f"/webhook/{ABSENT_ID}/deliveries/{ABSENT_ID}/retry"), 404),
        },
    ),
    "POST /webhook/{webhook_id}/replay": Route(
        "admin",
        "administer webhooks",
        {
            "valid": (_replay, 202),
            "absent": (_fixed("POST", f"/webhook/{ABSENT_ID}/replay", body={"since": "2026-01-01T00:00:00Z"}), 404),
            "invalid (no range)": (_replay_without_range, 400),
        },
    ),
    "POST /webhook/{webhook_id}/test": Route(
        "admin",
        "administer webhooks",
        {"valid": (_test_webhook, 202), "absent": (_fixed("POST", f"/webhook/{ABSENT_ID}/test"), 404)},
    ),
    "GET /users": Route(
        "read",
        "read users",
        {"valid": (_get("/users"), 200), "invalid query": (_fixed("GET", "/users", {"role": "owner"}), 400)},
    ),
    "GET /users/{user_id}": Route(
        "read",
        "read users",
        {"valid": (_get(_user_path), 200), "absent": (_fixed("GET", f"/users/{ABSENT_ID}"), 404)},
    ),
    "POST /users": Route(
        "admin",
        "administer users",
        {
            "valid": (_create_user, 201),
            "invalid": (
                _fixed("POST", "/users", body={"email": "x@example.com", "password": "short", "role": "agent"}),
                400,
            ),
        },
    ),
    "PUT /users/{user_id}": Route(
        "admin",
        "administer users",
        {
            "valid": (_change_user, 200),
            "absent": (_fixed("PUT", f"/users/{ABSENT_ID}", body={"status": "active"}), 404),
        },
    ),
    "DELETE /users/{user_id}": Route(
        "admin",
        "administer users",
        {"valid": (_deactivate_user, 204), "absent": (_fixed("DELETE", f"/users/{ABSENT_ID}"), 404)},
    ),
    "POST /auth/login": Route(
        "public",
        None,
        {
            "valid": (_sign_in, 200),
            "wrong password": (_sign_in_wrongly, 401),
            "invalid": (
                _fixed("POST", "/auth/login", body={"email": "x@example.com"}, headers={"x-tenantid": ABSENT_ID}),
                400,
            ),
        },
    ),
    "POST /auth/invitation": Route(
        "public",
        None,
        {
            "valid": (_accept_invitation, 200),
            "unknown token": (_accept_unknown_invitation, 401),
            "invalid": (
                _fixed("POST", "/auth/invitation", body={"token": "x"}, headers={"x-tenantid": ABSENT_ID}),
                400,
            ),
        },
    ),
}

# Tokens of the owner (roles of ALPHA_ROLES) that lack what the permission needs: the realm role (a role the tenant
# does not have, none at all, only the support role, or the other tenant's role names), the scope, or both.
OTHER_TENANTS_ROLE_NAMES = ["reader", "boss", "helpdesk"]
LACKING: dict[Requirement, dict[str, tuple[list[str], str]]] = {
    "read": {
        "unknown role": (["unrelated"], ADMIN_SCOPE),
        "no roles": ([], AGENT_SCOPE),
        "support role only": (["support"], AGENT_SCOPE),
        "the other tenant's role names": (OTHER_TENANTS_ROLE_NAMES, ADMIN_SCOPE),
        "no read scope": (["admin"], "tickets:write tickets:admin"),
    },
    "write": {
        "read-only role": (["viewer"], ADMIN_SCOPE),
        "viewer with the agent's scopes": (["viewer"], AGENT_SCOPE),
        "no roles": ([], ADMIN_SCOPE),
        "support role only": (["support"], ADMIN_SCOPE),
        "the other tenant's role names": (OTHER_TENANTS_ROLE_NAMES, ADMIN_SCOPE),
        "no write scope": (["admin"], "tickets:read tickets:admin"),
        "agent with the read scope only": (["agent"], READ_SCOPE),
    },
    "admin": {
        "agent role": (["agent"], ADMIN_SCOPE),
        "every role but admin": (["viewer", "agent", "support"], ADMIN_SCOPE),
        "the other tenant's role names": (OTHER_TENANTS_ROLE_NAMES, ADMIN_SCOPE),
        "no admin scope": (["admin"], AGENT_SCOPE),
        "an agent's token": (["agent"], AGENT_SCOPE),
    },
    # The default delete roles are the admin roles.
    "delete": {
        "agent role": (["agent"], ADMIN_SCOPE),
        "every role but admin": (["viewer", "agent", "support"], ADMIN_SCOPE),
        "no roles": ([], ADMIN_SCOPE),
        "the other tenant's role names": (OTHER_TENANTS_ROLE_NAMES, ADMIN_SCOPE),
        "no write scope": (["admin"], "tickets:read tickets:admin"),
    },
}
# A customer-level token with every scope: refused wherever customers may not call.
CUSTOMER = (["customer"], ADMIN_SCOPE)
# Every role of the owner that grants the permission; each must get through with just the route's scope.
GRANTING: dict[Requirement, list[list[str]]] = {
    "public": [],
    "authenticated": [[]],
    "read": [["viewer"], ["agent"], ["admin"]],
    "write": [["agent"], ["admin"]],
    "admin": [["admin"]],
    "delete": [["admin"]],
}
STRANGER = SigningKey("ES256")
USER_PASSWORD = "matrix password"


@pytest.fixture
async def alpha(tenant_factory: TenantFactory) -> TenantSpec:
    """The owner: a fresh tenant like conftest's alpha, plus a builtin realm (for the user routes and sign-in)."""
    return await tenant_factory.fresh("alpha", builtin_realm=True)


async def send(world: World, call: Call, headers: dict[str, str]) -> httpx.Response:
    headers = {**headers, **call.headers}
    if call.form is not None:
        headers = {**headers, "content-type": FORM_CONTENT_TYPE}
        return await world.http.request(
            call.method, API + call.path, params=call.params, content=call.form, headers=headers
        )
    return await world.http.request(call.method, API + call.path, params=call.params, json=call.body, headers=headers)


def bad_tokens(tenant: TenantSpec) -> dict[str, str]:
    realm = tenant.realms[0]
    return {
        "garbage": "not-a-jwt",
        "tampered": tampered_signature(token(tenant, roles=["admin"], scope=ADMIN_SCOPE)),
        "signed by a stranger's key": sign(
            claims_for(tenant, realm, roles=["admin"], scope=ADMIN_SCOPE), STRANGER, realm.key.kid
        ),
    }


def every_role(tenant: TenantSpec) -> list[str]:
    roles = tenant.roles
    return sorted({*roles["read"], *roles["write"], *roles["admin"], roles["support"], *roles.get("customer", ())})


@pytest.mark.parametrize("route", ROUTES)
async def test_who_may_call_the_route(
    client: httpx.AsyncClient, alpha: TenantSpec, beta: TenantSpec, route: str
) -> None:
    entry = ROUTES[route]
    world = World(client, alpha, beta)
    if entry.requires == "public":
        for variant, (build, passed) in entry.variants.items():
            response = await send(world, await build(world), {"accept": "application/json"})
            assert response.status_code == passed, (route, variant, response.text)
        return
    for variant, (build, passed) in entry.variants.items():
        where = f"{route} ({variant})"
        call = await build(world)
        before = await world.snapshot()

        missing = await send(world, call, auth_headers(alpha, None))
        assert (missing.status_code, missing.json()) == (401, AUTHENTICATION_REQUIRED), where
        assert missing.headers["www-authenticate"] == BEARER_CHALLENGE, where

        for kind, bearer in bad_tokens(alpha).items():
            bad = await send(world, call, auth_headers(alpha, bearer))
            assert (bad.status_code, bad.json()) == (401, INVALID_TOKEN), (where, kind)
            assert bad.headers["www-authenticate"] == INVALID_TOKEN_CHALLENGE, (where, kind)

        # Valid tokens with every role and scope of their tenant, presented for the other tenant.
        beta_for_alpha = auth_headers(beta, token(beta, roles=every_role(beta), scope=ADMIN_SCOPE))
        alpha_for_beta = auth_headers(alpha, token(alpha, roles=every_role(alpha), scope=ADMIN_SCOPE))
        beta_for_alpha["x-tenantid"], alpha_for_beta["x-tenantid"] = str(alpha.id), str(beta.id)
        for direction, headers in (
            ("beta's token for alpha", beta_for_alpha),
            ("alpha's token for beta", alpha_for_beta),
        ):
            foreign = await send(world, call, headers)
            assert (foreign.status_code, foreign.json()) == (404, TENANT_NOT_FOUND), (where, direction)

        if entry.requires != "authenticated":
            assert entry.action is not None
            refusal = permission_failure(entry.action)
            lacking = LACKING[entry.requires] | ({} if entry.customers else {"customer role": CUSTOMER})
            for lack, (roles, scope) in lacking.items():
                refused = await send(world, call, auth_headers(alpha, token(alpha, roles=roles, scope=scope)))
                assert (refused.status_code, refused.json()) == (401, refusal), (where, lack)
                assert refused.headers["www-authenticate"] == INSUFFICIENT_SCOPE_CHALLENGE, (where, lack)
            # alpha's role names in a beta token, at beta: beta's roles are reader / agent / boss / helpdesk, so
            # "admin" and "viewer" grant nothing there.
            strange = await send(
                world, call, auth_headers(beta, token(beta, roles=["admin", "viewer"], scope=ADMIN_SCOPE))
            )
            assert (strange.status_code, strange.json()) == (401, refusal), where

        assert await world.snapshot() == before, f"{where}: a refused call changed something"

        for roles in GRANTING[entry.requires]:
            allowed = await build(world)
            bearer = token(alpha, roles=roles, scope=SCOPE_OF[entry.requires])
            response = await send(world, allowed, auth_headers(alpha, bearer))
            assert response.status_code == passed, (where, roles, response.text)
        if entry.customers:
            allowed = await build(world)
            bearer = token(alpha, roles=["customer"], scope=SCOPE_OF[entry.requires], subject="customer-1")
            response = await send(world, allowed, auth_headers(alpha, bearer))
            assert response.status_code == entry.customers[variant], (where, "customer", response.text)


# ---------------------------------------------------------------------------------------------------------------
# the table against the app's route table

_PARAMETER_TYPE = re.compile(r"\{(\w+):[^}]+\}")


def api_routes(app: Any) -> set[str]:
    """Every "METHOD path" under /api/v2/ticketing that the app routes, as ROUTES spells it: without the OPTIONS
    handlers Litestar adds to every path, HEAD, and routes outside the API (health probes, the OpenAPI pages)."""
    found = set()
    for route in find_litestar(app).routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith(API + "/"):
            continue
        path = _PARAMETER_TYPE.sub(r"{\1}", route.path.removeprefix(API))
        for method, (handler, _) in route.route_handler_map.items():
            generated = method == "OPTIONS" and getattr(handler.fn, "__module__", "").startswith("litestar.")
            if method == "HEAD" or generated:
                continue
            found.add(f"{method} {path}")
    return found


def test_the_table_lists_exactly_the_apps_routes(server: LiveServer) -> None:
    routes = api_routes(server.app)
    assert routes, "no API routes found in the app's route table"
    without_entry, without_route = sorted(routes - set(ROUTES)), sorted(set(ROUTES) - routes)
    assert not without_entry and not without_route, (
        f"routes without an entry in ROUTES: {without_entry}; entries in ROUTES that name no route: {without_route}"
    )


# ---------------------------------------------------------------------------------------------------------------
# the seeds' v1 surface (/api/v1): the same tokens and roles, the seeds' own envelopes and statuses

V1_UNAUTHORIZED = {"success": False, "error": {"message": "Unauthorized access", "code": "UNAUTHORIZED"}}
V1_FORBIDDEN = {"success": False, "error": {"message": "Insufficient permissions", "code": "FORBIDDEN"}}
V1_TICKET_NOT_FOUND = {"success": False, "error": {"message": "Ticket not found", "code": "NOT_FOUND"}}
V1_TENANT_NOT_FOUND = {"success": False, "error": {"message": "Tenant not found", "code": "NOT_FOUND"}}


async def _v1_facility_ticket(world: World) -> dict[str, Any]:
    fac = await world.admin.ticket_type("FAC")
    fields = field_ids(fac)
    created = await world.admin.create(fac["id"], {fields["category"]: "WATER", fields["title"]: "matrix"})
    assert created.status_code == 201, created.text
    document: dict[str, Any] = (await world.admin.get(created.json()["objectId"])).json()
    return document


async def _v1_change_status(world: World) -> Call:
    return Call("PATCH", f"/tickets/{(await _v1_facility_ticket(world))['id']}/status", body={"status": "CANCELLED"})


async def _v1_update(world: World) -> Call:
    return Call("PUT", f"/tickets/{(await _v1_facility_ticket(world))['id']}", body={"notes": "matrix"})


async def _v1_update_read_only(world: World) -> Call:
    return Call("PUT", f"/tickets/{(await _v1_facility_ticket(world))['id']}", body={"userId": "matrix"})


async def _v1_new_state(world: World) -> int:
    state_id: int = await _v1_state_number(world, (await world.new_state())["name"])
    return state_id


async def _v1_state_number(world: World, name: str) -> int:
    listed = await world.http.get(f"{V1}/ticket_states", headers=v1_headers(world.admin.bearer))
    assert listed.status_code == 200, listed.text
    number: int = next(state["id"] for state in listed.json() if state["name"] == name)
    return number


async def _v1_show_state(world: World) -> Call:
    return Call("GET", f"/ticket_states/{await _v1_state_number(world, 'closed')}")


async def _v1_create_state(world: World) -> Call:
    return Call("POST", "/ticket_states", body={"name": world.name(), "state_type_id": 2})


async def _v1_update_state(world: World) -> Call:
    return Call("PUT", f"/ticket_states/{await _v1_new_state(world)}", body={"note": "matrix"})


async def _v1_delete_state(world: World) -> Call:
    return Call("DELETE", f"/ticket_states/{await _v1_new_state(world)}")


async def _v1_delete_referenced_state(world: World) -> Call:
    return Call("DELETE", f"/ticket_states/{await _v1_state_number(world, 'closed')}")


# Seed 004's routes (its envelope: {"error": {"code", "message", "details"?}}).
V1_PLATFORM_UNAUTHORIZED = {"error": {"code": "unauthorized", "message": "Authentication required"}}
V1_PLATFORM_FORBIDDEN = {"error": {"code": "forbidden", "message": "You do not have permission to perform this action"}}
V1_PLATFORM_NOT_FOUND = {"error": {"code": "not_found", "message": "Ticket not found"}}
V1_PLATFORM_TENANT_NOT_FOUND = {"error": {"code": "not_found", "message": "Tenant not found"}}


async def _v1_request_ticket_path(world: World) -> str:
    return f"/tickets/{(await world.new_ticket())['id']}"


async def _v1_platform_create(world: World) -> Call:
    return Call("POST", "/tickets", body={"title": "matrix", "priority": "high"})


async def _v1_platform_show(world: World) -> Call:
    return Call("GET", f"/tickets/{(await world.ticket())['id']}")


async def _v1_platform_patch(world: World) -> Call:
    return Call("PATCH", await _v1_request_ticket_path(world), body={"priority": "critical"})


async def _v1_platform_patch_invalid(world: World) -> Call:
    return Call("PATCH", await _v1_request_ticket_path(world), body={"status": "done"})


async def _v1_platform_delete(world: World) -> Call:
    return Call("DELETE", await _v1_request_ticket_path(world))


async def _v1_platform_comment(world: World) -> Call:
    return Call("POST", f"{await _v1_request_ticket_path(world)}/comments", body={"content": "matrix"})


async def _v1_platform_sign_in(world: World) -> Call:
    call = await _sign_in(world)
    return Call("POST", "/auth/login", body=call.body, headers=call.headers)


async def _v1_platform_sign_in_wrongly(world: World) -> Call:
    call = await _sign_in_wrongly(world)
    return Call("POST", "/auth/login", body=call.body, headers=call.headers)


@dataclass(frozen=True)
class V1Route:
    requires: Requirement
    variants: dict[str, tuple[Build, int]]
    # What another tenant's token (all its roles, no tenant headers: its own tenant) gets, per variant: its tenant
    # has no such object.
    foreign: dict[str, tuple[int | None, Any]]
    # Seed 003's routes: their own envelope ({"error": ...}) and permission names (see V1_STATE_LACKING).
    seed_003: bool = False
    # Seed 004's routes: their own envelope.
    seed_004: bool = False
    # As Route.customers: the status a customer's call gets where customers may call the route.
    customers: dict[str, int] = field(default_factory=dict)


V1_ROUTES: dict[str, V1Route] = {
    "PATCH /tickets/{ticket_id}/status": V1Route(
        "write",
        {
            "valid": (_v1_change_status, 200),
            "absent": (_fixed("PATCH", f"/tickets/{ABSENT_ID}/status", body={"status": "CANCELLED"}), 404),
            "invalid": (_fixed("PATCH", f"/tickets/{ABSENT_ID}/status", body={"status": "DONE"}), 400),
        },
        {
            "valid": (404, V1_TICKET_NOT_FOUND),
            "absent": (404, V1_TICKET_NOT_FOUND),
            "invalid": (400, None),
        },
    ),
    "PUT /tickets/{ticket_id}": V1Route(
        "write",
        {
            "valid": (_v1_update, 200),
            "absent": (_fixed("PUT", f"/tickets/{ABSENT_ID}", body={"notes": "x"}), 404),
            "read-only member": (_v1_update_read_only, 400),
        },
        {
            "valid": (404, V1_TICKET_NOT_FOUND),
            "absent": (404, V1_TICKET_NOT_FOUND),
            "read-only member": (400, None),
        },
    ),
    "GET /ticket_states": V1Route(
        "read", {"valid": (_fixed("GET", "/ticket_states"), 200)}, {"valid": (200, None)}, seed_003=True
    ),
    "GET /ticket_states/{ticket_state_id}": V1Route(
        "read",
        {"valid": (_v1_show_state, 200), "absent": (_fixed("GET", "/ticket_states/999999"), 404)},
        {"valid": (200, None), "absent": (404, None)},
        seed_003=True,
    ),
    "POST /ticket_states": V1Route(
        "admin",
        {
            "valid": (_v1_create_state, 201),
            "invalid": (_fixed("POST", "/ticket_states", body={"name": "x", "state_type_id": 9}), 422),
        },
        {"valid": (None, None), "invalid": (422, None)},
        seed_003=True,
    ),
    "PUT /ticket_states/{ticket_state_id}": V1Route(
        "admin",
        {
            "valid": (_v1_update_state, 200),
            "absent": (_fixed("PUT", "/ticket_states/999999", body={"note": "x"}), 404),
        },
        {"valid": (None, None), "absent": (404, None)},
        seed_003=True,
    ),
    "DELETE /ticket_states/{ticket_state_id}": V1Route(
        "admin",
        {
            "valid": (_v1_delete_state, 200),
            "referenced": (_v1_delete_referenced_state, 422),
            "absent": (_fixed("DELETE", "/ticket_states/999999"), 404),
        },
        {"valid": (None, None), "referenced": (None, None), "absent": (404, None)},
        seed_003=True,
    ),
    "GET /tickets": V1Route(
        "read",
        {
            "valid": (_fixed("GET", "/tickets"), 200),
            "filtered": (_fixed("GET", "/tickets", {"status": "open", "priority": "high", "sort": "priority"}), 200),
            "invalid": (_fixed("GET", "/tickets", {"priority": "urgent"}), 400),
        },
        {"valid": (200, None), "filtered": (200, None), "invalid": (400, None)},
        seed_004=True,
        customers={"valid": 200, "filtered": 200, "invalid": 400},
    ),
    "POST /tickets": V1Route(
        "write",
        {
            "valid": (_v1_platform_create, 201),
            "invalid": (_fixed("POST", "/tickets", body={"title": "x", "priority": "urgent"}), 400),
        },
        {"valid": (None, None), "invalid": (400, None)},
        seed_004=True,
        customers={"valid": 201, "invalid": 400},
    ),
    "GET /tickets/{ticket_id}": V1Route(
        "read",
        {"valid": (_v1_platform_show, 200), "absent": (_fixed("GET", f"/tickets/{ABSENT_ID}"), 404)},
        {"valid": (404, V1_PLATFORM_NOT_FOUND), "absent": (404, V1_PLATFORM_NOT_FOUND)},
        seed_004=True,
        # Not the customer's ticket: as if it did not exist.
        customers={"valid": 404, "absent": 404},
    ),
    "PATCH /tickets/{ticket_id}": V1Route(
        "write",
        {
            "valid": (_v1_platform_patch, 200),
            "absent": (_fixed("PATCH", f"/tickets/{ABSENT_ID}", body={"priority": "low"}), 404),
            "invalid": (_v1_platform_patch_invalid, 400),
        },
        {"valid": (404, V1_PLATFORM_NOT_FOUND), "absent": (404, V1_PLATFORM_NOT_FOUND), "invalid": (400, None)},
        seed_004=True,
    ),
    "DELETE /tickets/{ticket_id}": V1Route(
        "delete",
        {"valid": (_v1_platform_delete, 204), "absent": (_fixed("DELETE", f"/tickets/{ABSENT_ID}"), 404)},
        {"valid": (404, V1_PLATFORM_NOT_FOUND), "absent": (404, V1_PLATFORM_NOT_FOUND)},
        seed_004=True,
    ),
    "POST /tickets/{ticket_id}/comments": V1Route(
        "write",
        {
            "valid": (_v1_platform_comment, 201),
            "absent": (_fixed("POST", f"/tickets/{ABSENT_ID}/comments", body={"content": "x"}), 404),
        },
        {"valid": (404, V1_PLATFORM_NOT_FOUND), "absent": (404, V1_PLATFORM_NOT_FOUND)},
        seed_004=True,
        customers={"valid": 404, "absent": 404},
    ),
    "GET /users": V1Route(
        "read",
        {"valid": (_fixed("GET", "/users"), 200), "invalid": (_fixed("GET", "/users", {"role": "owner"}), 400)},
        {"valid": (200, None), "invalid": (400, None)},
        seed_004=True,
    ),
    "POST /auth/login": V1Route(
        "public",
        {"valid": (_v1_platform_sign_in, 200), "wrong password": (_v1_platform_sign_in_wrongly, 401)},
        {},
        seed_004=True,
    ),
}
# Seed 003's permissions on the test tenants' default mapping: admin.object is the admin roles, ticket.agent the
# read, write and admin roles, ticket.customer the customer roles. Readers may hold any; writers admin.object.
V1_STATE_LACKING: dict[Requirement, dict[str, tuple[list[str], str]]] = {
    "read": {
        "unknown role": (["unrelated"], ADMIN_SCOPE),
        "no roles": ([], AGENT_SCOPE),
        "support role only": (["support"], AGENT_SCOPE),
        "the other tenant's role names": (OTHER_TENANTS_ROLE_NAMES, ADMIN_SCOPE),
        "no read scope": (["admin"], "tickets:write tickets:admin"),
    },
    "admin": {
        "agent role": (["agent"], ADMIN_SCOPE),
        "customer role": (["customer"], ADMIN_SCOPE),
        "every role but admin": (["viewer", "agent", "support", "customer"], ADMIN_SCOPE),
        "the other tenant's role names": (OTHER_TENANTS_ROLE_NAMES, ADMIN_SCOPE),
        "no admin scope": (["admin"], AGENT_SCOPE),
    },
}
V1_STATE_UNAUTHORIZED = {"error": "authentication failed"}
V1_STATE_FORBIDDEN = {"error": "Not authorized"}
V1_STATE_TENANT_NOT_FOUND = {"error": "Tenant not found"}
V1_STATE_GRANTING: dict[Requirement, list[list[str]]] = {
    "read": [["viewer"], ["agent"], ["admin"], ["customer"]],
    "admin": [["admin"]],
}


def granting_v1(entry: V1Route) -> list[list[str]]:
    """The role sets that grant the route's requirement."""
    return (V1_STATE_GRANTING if entry.seed_003 else GRANTING)[entry.requires]


def csrf_refusal(entry: V1Route) -> Any:
    """A cookie-authenticated write without its CSRF token, in the route's envelope."""
    message = (
        f"A write authenticated by the session cookie needs the {CSRF_HEADER} header with the csrf_token cookie's value"
    )
    if entry.seed_003:
        return {"error": message}
    if entry.seed_004:
        return {"error": {"code": "csrf_token_invalid", "message": message}}
    return {"success": False, "error": {"message": message, "code": "CSRF_TOKEN_INVALID"}}


async def send_v1(world: World, call: Call, headers: dict[str, str]) -> httpx.Response:
    return await world.http.request(
        call.method, V1 + call.path, params=call.params, json=call.body, headers={**headers, **call.headers}
    )


@pytest.mark.parametrize("route", V1_ROUTES)
async def test_who_may_call_the_v1_route(
    client: httpx.AsyncClient, alpha: TenantSpec, beta: TenantSpec, route: str
) -> None:
    entry = V1_ROUTES[route]
    world = World(client, alpha, beta)
    if entry.requires == "public":
        for variant, (build, passed) in entry.variants.items():
            response = await send_v1(world, await build(world), {"accept": "application/json"})
            assert response.status_code == passed, (route, variant, response.text)
        return
    unauthorized, forbidden, tenant_not_found = (
        (V1_STATE_UNAUTHORIZED, V1_STATE_FORBIDDEN, V1_STATE_TENANT_NOT_FOUND)
        if entry.seed_003
        else (V1_PLATFORM_UNAUTHORIZED, V1_PLATFORM_FORBIDDEN, V1_PLATFORM_TENANT_NOT_FOUND)
        if entry.seed_004
        else (V1_UNAUTHORIZED, V1_FORBIDDEN, V1_TENANT_NOT_FOUND)
    )
    for variant, (build, passed) in entry.variants.items():
        where = f"{route} ({variant})"
        call = await build(world)
        before = await world.snapshot()

        missing = await send_v1(world, call, v1_headers(None))
        assert (missing.status_code, missing.json()) == (401, unauthorized), where
        assert missing.headers["www-authenticate"] == BEARER_CHALLENGE, where
        for kind, bearer in bad_tokens(alpha).items():
            bad = await send_v1(world, call, v1_headers(bearer))
            assert (bad.status_code, bad.json()) == (401, unauthorized), (where, kind)

        beta_token = token(beta, roles=every_role(beta), scope=ADMIN_SCOPE)
        named = await send_v1(world, call, v1_headers(beta_token, **{"x-tenantid": str(alpha.id)}))
        assert (named.status_code, named.json()) == (404, tenant_not_found), where
        status, body = entry.foreign[variant]
        if status is not None:  # None: a write that would change the other tenant (tried below with refused roles)
            foreign = await send_v1(world, call, v1_headers(beta_token))
            assert foreign.status_code == status, (where, foreign.text)
            if body is not None:
                assert foreign.json() == body, where

        if entry.seed_003:
            lacking = V1_STATE_LACKING[entry.requires]
        else:
            lacking = LACKING[entry.requires] | ({} if entry.customers else {"customer role": CUSTOMER})
        for lack, (roles, scope) in lacking.items():
            refused = await send_v1(world, call, v1_headers(token(alpha, roles=roles, scope=scope)))
            assert (refused.status_code, refused.json()) == (403, forbidden), (where, lack)
        strange = await send_v1(world, call, v1_headers(token(beta, roles=["admin", "viewer"], scope=ADMIN_SCOPE)))
        assert (strange.status_code, strange.json()) == (403, forbidden), where
        # The session cookie in place of the header: a write without the CSRF token (what another site's form
        # sends) is refused before anything else; a read needs none (below, the cookie gets through).
        session = token(alpha, roles=granting_v1(entry)[0], scope=SCOPE_OF[entry.requires])
        if call.method != "GET":
            forged = await send_v1(world, call, {"accept": "application/json", "cookie": f"session={session}"})
            assert (forged.status_code, forged.json()) == (403, csrf_refusal(entry)), where

        assert await world.snapshot() == before, f"{where}: a refused call changed something"

        allowed = await build(world)
        by_cookie = await send_v1(
            world,
            allowed,
            {"accept": "application/json", "cookie": f"session={session}", CSRF_HEADER: csrf_token(session)},
        )
        assert by_cookie.status_code == passed, (where, "session cookie", by_cookie.text)

        for roles in granting_v1(entry):
            allowed = await build(world)
            bearer = token(alpha, roles=roles, scope=SCOPE_OF[entry.requires])
            response = await send_v1(world, allowed, v1_headers(bearer))
            assert response.status_code == passed, (where, roles, response.text)
        if entry.customers:
            allowed = await build(world)
            bearer = token(alpha, roles=["customer"], scope=SCOPE_OF[entry.requires], subject="customer-1")
            response = await send_v1(world, allowed, v1_headers(bearer))
            assert response.status_code == entry.customers[variant], (where, "customer", response.text)


def test_the_v1_table_lists_exactly_the_apps_v1_routes(server: LiveServer) -> None:
    routes = set()
    for route in find_litestar(server.app).routes:
        if isinstance(route, HTTPRoute) and route.path.startswith(V1 + "/"):
            path = _PARAMETER_TYPE.sub(r"{\1}", route.path.removeprefix(V1))
            routes |= {f"{method} {path}" for method in route.route_handler_map if method not in ("OPTIONS", "HEAD")}
    assert routes == set(V1_ROUTES)
