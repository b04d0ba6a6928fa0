"""Comments and internal notes (issue 10): adding, listing oldest first in pages, showing one; what a comment does to
its ticket (etag unchanged, updated_at moved, a `comment.created` event); who sees internal notes on every read path;
sanitised content and its limits; Idempotency-Key; `?include=comments` and its own validator; tenant isolation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support import (
    ALPHA_ROLES,
    LOCK_TICKETS,
    TICKETS,
    UPDATED,
    TenantApi,
    TenantFactory,
    TenantSpec,
    assert_numbered_events,
    comments_path,
    field_ids,
    gated,
    invalid,
    new_ticket,
    permission_failure,
    ticket_not_found,
    timestamp,
    token,
)

INVALID_COMMENT = "Invalid comment"
MAX_CONTENT = 20_000


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


async def open_ticket(api: TenantApi, title: str = "Printer jammed") -> dict[str, Any]:
    """A new REQ ticket's GET document."""
    request_type = await api.ticket_type("REQ")
    created = await new_ticket(api, request_type["id"], {field_ids(request_type)["title"]: title})
    return await shown(api, created["objectId"])


async def shown(api: TenantApi, object_id: str, **params: str) -> dict[str, Any]:
    response = await api.http.get(f"{TICKETS}/{object_id}", params=params, headers=api.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def add(api: TenantApi, object_id: str, content: str, *, internal: bool = False) -> dict[str, Any]:
    response = await api.comment(object_id, {"content": content, "is_internal": internal})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def listed(api: TenantApi, object_id: str, **params: str) -> dict[str, Any]:
    response = await api.comments(object_id, **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def history(api: TenantApi, object_id: str) -> dict[str, Any]:
    response = await api.http.get(f"{TICKETS}/{object_id}/history", params={"per_page": "100"}, headers=api.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def comment_not_found(comment_id: str) -> dict[str, Any]:
    return {"error": True, "message": f"Comment not found ({comment_id})"}


def pages(path: str, total: int, per_page: int, current: int, last: int, *, sent: bool = True) -> dict[str, Any]:
    """The pagination block of a list; `sent`: whether the request named per_page (links repeat its query)."""

    def link(page: int) -> str:
        return f"{path}?per_page={per_page}&page={page}" if sent else f"{path}?page={page}"

    return {
        "total": total,
        "per_page": per_page,
        "current_page": current,
        "last_page": last,
        "next_page_url": link(current + 1) if current < last else None,
        "prev_page_url": link(current - 1) if current > 1 else None,
    }


# --- create, list, show ----------------------------------------------------------------------------------------


async def test_a_comment_is_added_listed_and_shown(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha, subject="agent-comments")
    ticket = await open_ticket(agent)
    object_id = ticket["object_id"]

    response = await agent.comment(object_id, {"content": "<p>I've checked the <strong>server logs</strong>.</p>"})

    assert response.status_code == 201, response.text
    comment = response.json()
    assert list(comment) == ["id", "content", "is_internal", "author", "created_at", "attachments"]
    assert comment == {
        "id": str(uuid.UUID(comment["id"])),
        "content": "<p>I've checked the <strong>server logs</strong>.</p>",
        "is_internal": False,
        "author": {"id": "agent-comments", "name": None, "email": None},
        "created_at": comment["created_at"],
        "attachments": [],
    }
    assert "idempotent-replayed" not in response.headers
    assert timestamp(comment["created_at"]) > timestamp(ticket["updated_at"])
    path = comments_path(object_id)
    assert await listed(agent, object_id) == {
        "data": [comment],
        "pagination": {
            "total": 1,
            "per_page": 20,
            "current_page": 1,
            "last_page": 1,
            "next_page_url": None,
            "prev_page_url": None,
        },
    }
    one = await client.get(comments_path(object_id, comment["id"]), headers=agent.headers)
    assert (one.status_code, one.json()) == (200, comment)
    # The seed's other member names are not this API's: `is_internal` defaults to false, `attachments` to [].
    assert (await add(agent, object_id, "Second"))["is_internal"] is False
    assert (await listed(agent, object_id))["pagination"] == pages(
        path, total=2, per_page=20, current=1, last=1, sent=False
    )


async def test_comments_are_listed_oldest_first_in_pages(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    object_id = (await open_ticket(agent))["object_id"]
    added = [await add(agent, object_id, f"Comment {number}", internal=number == 3) for number in range(1, 6)]

    path = comments_path(object_id)
    seen = []
    for page, size in ((1, 2), (2, 2), (3, 1)):
        body = await listed(agent, object_id, per_page="2", page=str(page))
        assert body["pagination"] == pages(path, total=5, per_page=2, current=page, last=3)
        assert len(body["data"]) == size
        seen += body["data"]
    assert seen == added
    assert [timestamp(c["created_at"]) for c in seen] == sorted(timestamp(c["created_at"]) for c in seen)
    beyond = await listed(agent, object_id, per_page="2", page="4")
    assert (beyond["data"], beyond["pagination"]["total"]) == ([], 5)


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"per_page": "0"}, "per_page"),
        ({"per_page": "101"}, "per_page"),
        ({"page": "0"}, "page"),
        ({"sort": "created_at"}, "sort"),
    ],
)
async def test_the_list_refuses_bad_paging(
    client: httpx.AsyncClient, alpha: TenantSpec, params: dict[str, str], reason: str
) -> None:
    agent = TenantApi.agent(client, alpha)
    object_id = (await open_ticket(agent))["object_id"]
    response = await agent.comments(object_id, **params)
    assert response.status_code == 400, response.text
    assert (response.json()["code"], list(response.json()["validationResult"]["reason"])) == (
        "INPUT_VALIDATION_FAILURE",
        [reason],
    )


async def test_unknown_tickets_and_comments_are_not_found(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    object_id = (await open_ticket(agent))["object_id"]
    for absent in ("REQ-99999", "not-a-ticket"):
        assert (await agent.comments(absent)).json() == ticket_not_found(absent)
        posted = await agent.comment(absent, {"content": "Hello"})
        assert (posted.status_code, posted.json()) == (404, ticket_not_found(absent))
    for comment_id in (str(uuid.uuid4()), "not-a-uuid"):
        response = await client.get(comments_path(object_id, comment_id), headers=agent.headers)
        assert (response.status_code, response.json()) == (404, comment_not_found(comment_id))
    # A comment is found only under its own ticket.
    comment = await add(agent, object_id, "Mine")
    other = (await open_ticket(agent))["object_id"]
    elsewhere = await client.get(comments_path(other, comment["id"]), headers=agent.headers)
    assert (elsewhere.status_code, elsewhere.json()) == (404, comment_not_found(comment["id"]))


# --- what a comment does to its ticket ------------------------------------------------------------------------


async def test_a_comment_keeps_the_etag_moves_updated_at_and_is_an_event(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha, subject="agent-writer")
    commenter = TenantApi.agent(client, alpha, subject="agent-commenter")
    before = await open_ticket(agent)
    object_id = before["object_id"]

    response = await commenter.comment(object_id, {"content": "Note", "is_internal": True}, **{"x-request-id": "c-1"})
    assert response.status_code == 201, response.text
    comment = response.json()

    after = await shown(agent, object_id)
    assert after["etag"] == before["etag"]
    assert after["updated_at"] == comment["created_at"]
    assert timestamp(after["updated_at"]) > timestamp(before["updated_at"])
    assert (after["updated_by"], after["lastUpdatedBy"]) == ("agent-commenter", "agent-commenter")
    unchanged = {key: value for key, value in after.items() if key not in ("updated_at", "updated_by", "lastUpdatedBy")}
    assert unchanged == {key: before[key] for key in unchanged}

    events = (await history(agent, object_id))["data"]
    assert [event["event"] for event in events] == ["ticket.created", "comment.created"]
    assert events[1] == {
        "sequence": 2,
        "event": "comment.created",
        "at": comment["created_at"],
        "actor": "agent-commenter",
        "request_id": "c-1",
        "support": False,
        "etag": before["etag"],
        "changes": {},
        "state": None,
        "pending_until": None,
        "assignee": None,
        "note": None,
        "comment": {"id": comment["id"], "is_internal": True},
        "attachment_id": None,
    }
    assert events[0]["comment"] is None
    # The etag read before the comment is still current: a comment never makes a field update stale.
    counter = field_ids(await agent.ticket_type("REQ"))["counter"]
    updated = await agent.update(object_id, {"etag": before["etag"], "ticketUpdate": {counter: 1}})
    assert (updated.status_code, {k: updated.json()[k] for k in UPDATED}) == (200, UPDATED)
    # As-of reads see the comment's moment too: the ticket as a GET showed it right after the comment.
    as_of = await shown(agent, object_id, asOf=comment["created_at"])
    assert as_of == after


async def test_comments_racing_an_update_are_all_written_in_sequence_and_never_stale_it(
    client: httpx.AsyncClient, alpha: TenantSpec, db: asyncpg.Pool
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await open_ticket(agent)
    object_id = ticket["object_id"]
    counter = field_ids(await agent.ticket_type("REQ"))["counter"]

    async def racers() -> list[httpx.Response]:
        return await asyncio.gather(
            *(agent.comment(object_id, {"content": f"Racing {number}"}) for number in range(4)),
            agent.update(object_id, {"etag": ticket["etag"], "ticketUpdate": {counter: 7}}),
        )

    # Every racer queued on the ticket's row lock, then let go together.
    *commented, updated = await gated(db, LOCK_TICKETS, (alpha.id, [uuid.UUID(ticket["id"])]), 5, racers)

    assert [response.status_code for response in commented] == [201] * 4
    assert updated.status_code == 200, updated.text
    await assert_numbered_events(db, alpha.id, [ticket["id"]])
    events = (await history(agent, object_id))["data"]
    in_history = [event["comment"]["id"] for event in events if event["event"] == "comment.created"]
    assert [comment["id"] for comment in (await listed(agent, object_id))["data"]] == in_history
    assert sorted(in_history) == sorted(response.json()["id"] for response in commented)
    assert (await shown(agent, object_id))["etag"] == updated.json()["etag"]


# --- internal notes: who sees them ----------------------------------------------------------------------------


async def test_customers_never_see_internal_notes_on_any_read_path(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    customer = TenantApi.customer(client, alpha, subject="customer-7")
    # A ticket the customer created (an agent token with the customer's subject stands in for a customer's create).
    ticket = await open_ticket(TenantApi.agent(client, alpha, subject="customer-7"))
    object_id = ticket["object_id"]
    question = await add(customer, object_id, "<p>Any news?</p>")
    note = await add(agent, object_id, "Customer is on the legacy plan", internal=True)
    answer = await add(agent, object_id, "Working on it")
    assert question["author"]["id"] == "customer-7"

    # Lists, and their totals.
    assert (await listed(agent, object_id))["data"] == [question, note, answer]
    for_customer = await listed(customer, object_id)
    assert (for_customer["data"], for_customer["pagination"]["total"]) == ([question, answer], 2)
    # By id.
    for api, status in ((agent, 200), (customer, 404)):
        response = await client.get(comments_path(object_id, note["id"]), headers=api.headers)
        assert response.status_code == status, response.text
    hidden = await client.get(comments_path(object_id, note["id"]), headers=customer.headers)
    assert hidden.json() == comment_not_found(note["id"])
    # Embedded in the ticket.
    assert (await shown(agent, object_id, include="comments"))["comments"] == [question, note, answer]
    assert (await shown(customer, object_id, include="comments"))["comments"] == [question, answer]
    # The history, and its total.
    agents_view, customers_view = await history(agent, object_id), await history(customer, object_id)
    assert [(e["event"], e["comment"]) for e in agents_view["data"]] == [
        ("ticket.created", None),
        ("comment.created", {"id": question["id"], "is_internal": False}),
        ("comment.created", {"id": note["id"], "is_internal": True}),
        ("comment.created", {"id": answer["id"], "is_internal": False}),
    ]
    assert customers_view["data"] == [e for e in agents_view["data"] if not (e["comment"] or {}).get("is_internal")]
    assert (agents_view["pagination"]["total"], customers_view["pagination"]["total"]) == (4, 3)
    # A caller with a customer role and an agent-level role too is an agent.
    both = TenantApi(client, alpha, token(alpha, roles=["customer", "viewer"]))
    assert (await listed(both, object_id))["pagination"]["total"] == 3


async def test_a_customer_cannot_add_an_internal_note(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    customer = TenantApi.customer(client, alpha, subject="customer-8")
    ticket = await open_ticket(TenantApi.agent(client, alpha, subject="customer-8"))
    object_id = ticket["object_id"]

    response = await customer.comment(object_id, {"content": "Let me in", "is_internal": True})

    assert (response.status_code, response.json()) == (401, permission_failure("add an internal note"))
    assert await shown(customer, object_id) == ticket
    assert (await listed(TenantApi.agent(client, alpha), object_id))["data"] == []
    # Even on a ticket that is not theirs, the refusal is the permission's (nothing is said about the ticket).
    others = (await open_ticket(TenantApi.agent(client, alpha)))["object_id"]
    elsewhere = await customer.comment(others, {"content": "x", "is_internal": True})
    assert (elsewhere.status_code, elsewhere.json()) == (401, permission_failure("add an internal note"))


async def test_a_customer_reaches_only_the_comments_of_their_own_tickets(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    customer = TenantApi.customer(client, alpha, subject="customer-9")
    own = (await open_ticket(TenantApi.agent(client, alpha, subject="customer-9")))["object_id"]
    object_id = (await open_ticket(agent))["object_id"]
    comment = await add(agent, object_id, "Not for customer-9")
    others = await shown(agent, object_id)
    path = f"{TICKETS}/{object_id}"

    assert (await add(customer, own, "Mine"))["author"] == {"id": "customer-9", "name": None, "email": None}
    for response in (
        await customer.comment(object_id, {"content": "Sneaking in"}),
        await customer.comments(object_id),
        await client.get(comments_path(object_id, comment["id"]), headers=customer.headers),
        await client.get(path, params={"include": "comments"}, headers=customer.headers),
        await client.get(f"{path}/history", headers=customer.headers),
        await client.get(path, params={"asOfEtag": others["etag"]}, headers=customer.headers),
    ):
        assert (response.status_code, response.json()) == (404, ticket_not_found(object_id))
    assert await shown(agent, object_id) == others
    assert (await listed(agent, object_id))["data"] == [comment]


async def test_who_may_comment_is_the_tenant_files_comment_roles(
    client: httpx.AsyncClient, tenant_factory: TenantFactory
) -> None:
    # Only agents may comment here: neither the customers nor the viewers.
    roles = {
        "read": ["viewer", "agent"],
        "write": ["agent"],
        "admin": ["admin"],
        "support": "support",
        "customer": ["customer"],
        "comment": ["agent"],
    }
    tenant = await tenant_factory.fresh("commenting", roles=roles)
    ticket = await open_ticket(TenantApi.agent(client, tenant, subject="customer-1"))
    object_id = ticket["object_id"]
    refused = permission_failure("comment on tickets")
    for api in (TenantApi.customer(client, tenant), TenantApi(client, tenant, token(tenant, roles=["viewer"]))):
        response = await api.comment(object_id, {"content": "Hello"})
        assert (response.status_code, response.json()) == (401, refused)
    assert (await add(TenantApi.agent(client, tenant), object_id, "Hello"))["content"] == "Hello"
    # Reading needs no comment role: the customer still reads the comments of their ticket.
    assert (await listed(TenantApi.customer(client, tenant), object_id))["pagination"]["total"] == 1


# --- content --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("<script>alert(1)</script>Hello", "Hello"),
        ('<img src=x onerror="alert(1)">Look', "Look"),
        ('<svg onload="alert(1)"><circle r="1"/></svg>Shape', "Shape"),
        ('<a href="javascript:alert(1)">click</a>', '<a rel="noopener noreferrer">click</a>'),
        ('<a href="JaVaScRiPt:alert(1)">click</a>', '<a rel="noopener noreferrer">click</a>'),
        ('<a href="data:text/html,<script>alert(1)</script>">x</a>', '<a rel="noopener noreferrer">x</a>'),
        ('<a href="/relative">x</a>', '<a rel="noopener noreferrer">x</a>'),
        (
            '<a href="https://example.com/a?b=c" target="_blank" onclick="steal()">docs</a>',
            '<a href="https://example.com/a?b=c" rel="noopener noreferrer">docs</a>',
        ),
        (
            '<a href="mailto:help@example.com">mail</a>',
            '<a href="mailto:help@example.com" rel="noopener noreferrer">mail</a>',
        ),
        ('<style>p { color: red }</style><p style="background:url(javascript:x)">Styled</p>', "<p>Styled</p>"),
        ('<p onmouseover="alert(1)">Hover</p>', "<p>Hover</p>"),
        ('<iframe src="https://evil.example"></iframe>Framed', "Framed"),
        ("<!-- <script>alert(1)</script> -->Commented", "Commented"),
        (
            '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
            # The attribute's would-be markup is dropped; what is left is escaped text.
            '&lt;p title=""&gt;',
        ),
        ("a < b && c > d", "a &lt; b &amp;&amp; c &gt; d"),
        (
            "<p>One<br>two</p><ul><li><strong>bold</strong> <em>it</em></li></ul><ol><li>x</li></ol>"
            "<pre><code>print(1)</code></pre><blockquote>quoted</blockquote>",
            "<p>One<br>two</p><ul><li><strong>bold</strong> <em>it</em></li></ul><ol><li>x</li></ol>"
            "<pre><code>print(1)</code></pre><blockquote>quoted</blockquote>",
        ),
        ("<b>bold</b> <h1>title</h1> <div>div</div>", "bold title div"),
        ("Plain text stays plain", "Plain text stays plain"),
    ],
)
async def test_html_is_sanitised_before_it_is_stored(
    client: httpx.AsyncClient, alpha: TenantSpec, sent: str, stored: str
) -> None:
    agent = TenantApi.agent(client, alpha)
    object_id = (await open_ticket(agent))["object_id"]
    comment = await add(agent, object_id, sent)
    assert comment["content"] == stored
    assert (await listed(agent, object_id))["data"][0]["content"] == stored


async def test_content_may_be_as_long_as_the_limit(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    object_id = (await open_ticket(agent))["object_id"]
    longest = "x" * MAX_CONTENT
    assert (await add(agent, object_id, longest))["content"] == longest


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, {"content": "required: the comment's text (HTML allowed)"}),
        ({"content": None}, {"content": "required: the comment's text (HTML allowed)"}),
        ({"content": "x" * (MAX_CONTENT + 1)}, {"content": f"at most {MAX_CONTENT} characters"}),
        # Escaping makes it longer: 19,998 letters and "<>" are 20,006 characters once stored.
        (
            {"content": "x" * (MAX_CONTENT - 2) + "<>"},
            {"content": f"at most {MAX_CONTENT} characters once sanitised (text escaped)"},
        ),
        *(
            (
                {"content": empty},
                {"content": "shows no text once sanitised (scripts, styles and unsupported markup are removed)"},
            )
            for empty in ("", "   ", "<p> </p><br>", "<script>alert(1)</script>", "<img src=x onerror=alert(1)>")
        ),
    ],
)
async def test_bad_comments_are_refused_and_change_nothing(
    client: httpx.AsyncClient, alpha: TenantSpec, body: dict[str, Any], reason: dict[str, str]
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await open_ticket(agent)
    object_id = ticket["object_id"]

    response = await agent.comment(object_id, body, **{"idempotency-key": "bad-comment"})

    assert (response.status_code, response.json()) == (400, invalid(INVALID_COMMENT, reason))
    assert await shown(agent, object_id) == ticket
    assert (await listed(agent, object_id))["data"] == []
    assert len((await history(agent, object_id))["data"]) == 1
    # The key was not used up by the refusal.
    assert (
        await agent.comment(object_id, {"content": "Fine"}, **{"idempotency-key": "bad-comment"})
    ).status_code == 201


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"content": "x", "color": "red"}, {"body": "Object contains unknown field `color`"}),
        ({"content": "x", "is_internal": "yes"}, {"is_internal": "Expected `bool`, got `str`"}),
        ({"content": 7}, {"content": "Expected `str | null`, got `int`"}),
        (
            {"content": "x", "attachments": [{"filename": "a.txt"}]},
            {"attachments[0]": "Object missing required field `content`"},
        ),
        (["content"], {"body": "Expected `object`, got `array`"}),
    ],
)
async def test_malformed_bodies_are_refused_and_change_nothing(
    client: httpx.AsyncClient, alpha: TenantSpec, body: Any, reason: dict[str, str]
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await open_ticket(agent)
    response = await agent.comment(ticket["object_id"], body)
    assert (response.status_code, response.json()) == (400, invalid("The request failed validation", reason))
    assert await shown(agent, ticket["object_id"]) == ticket
    assert (await listed(agent, ticket["object_id"]))["data"] == []


# --- retries --------------------------------------------------------------------------------------------------


async def test_an_idempotency_key_adds_a_comment_once(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    object_id = (await open_ticket(agent))["object_id"]
    body = {"content": "Only once", "is_internal": True}

    first = await agent.comment(object_id, body, **{"idempotency-key": "comment-1"})
    again = await agent.comment(object_id, body, **{"idempotency-key": "comment-1"})

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert ("idempotent-replayed" in first.headers, again.headers["idempotent-replayed"]) == (False, "true")
    assert (await listed(agent, object_id))["data"] == [first.json()]
    other = await agent.comment(object_id, {"content": "Another"}, **{"idempotency-key": "comment-1"})
    assert (other.status_code, other.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    elsewhere = (await open_ticket(agent))["object_id"]
    moved = await agent.comment(elsewhere, body, **{"idempotency-key": "comment-1"})
    assert (moved.status_code, moved.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    bad_key = await agent.comment(object_id, body, **{"idempotency-key": "k" * 256})
    assert (bad_key.status_code, list(bad_key.json()["validationResult"]["reason"])) == (400, ["Idempotency-Key"])
    assert len((await listed(agent, object_id))["data"]) == 1


# --- ?include=comments -----------------------------------------------------------------------------------------


async def test_include_comments_embeds_them_under_a_validator_of_its_own(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    ticket = await open_ticket(agent)
    object_id = ticket["object_id"]
    path = f"{TICKETS}/{object_id}"

    empty = await client.get(path, params={"include": "comments"}, headers=agent.headers)
    assert empty.status_code == 200
    assert empty.json() == {**ticket, "comments": []}
    first = await add(agent, object_id, "First")
    plain = await client.get(path, headers=agent.headers)
    assert "comments" not in plain.json()
    assert plain.headers["etag"] == f'"{ticket["etag"]}"'

    embedded = await client.get(path, params={"include": "comments,comments"}, headers=agent.headers)
    assert embedded.json() == {**plain.json(), "comments": [first]}
    validator = embedded.headers["etag"]
    assert validator.startswith('W/"') and validator != empty.headers["etag"]
    assert embedded.json()["etag"] == ticket["etag"]  # the body's etag is still the one an update needs

    def revalidate(etag: str) -> Any:
        return client.get(path, params={"include": "comments"}, headers={**agent.headers, "if-none-match": etag})

    not_modified = await revalidate(validator)
    assert (not_modified.status_code, not_modified.content, not_modified.headers["etag"]) == (304, b"", validator)
    # A copy from before the comment is stale, although the ticket's etag is the same: never a 304.
    for stale in (empty.headers["etag"], f'"{ticket["etag"]}"', ticket["etag"]):
        assert (await revalidate(stale)).status_code == 200
    await add(agent, object_id, "Second")
    fresh = await revalidate(validator)
    assert fresh.status_code == 200
    assert [c["content"] for c in fresh.json()["comments"]] == ["First", "Second"]
    assert fresh.headers["etag"] != validator
    # Without include the ticket's own etag still answers 304.
    assert (
        await client.get(path, headers={**agent.headers, "if-none-match": plain.headers["etag"]})
    ).status_code == 304


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"include": "bogus,comments"}, "unknown 'bogus'; a comma-separated list of: comments, attachments"),
        (
            {"include": "comments,Comments,x"},
            "unknown 'Comments', 'x'; a comma-separated list of: comments, attachments",
        ),
        ({"include": ""}, "unknown ''; a comma-separated list of: comments, attachments"),
        ({"include": "comments, comments"}, "unknown ' comments'; a comma-separated list of: comments, attachments"),
        ({"include": "comments", "asOf": "2030-01-01T00:00:00Z"}, "cannot be combined with asOf or asOfEtag"),
    ],
)
async def test_include_refuses_what_it_does_not_know(
    client: httpx.AsyncClient, alpha: TenantSpec, params: dict[str, str], reason: str
) -> None:
    agent = TenantApi.agent(client, alpha)
    object_id = (await open_ticket(agent))["object_id"]
    response = await client.get(f"{TICKETS}/{object_id}", params=params, headers=agent.headers)
    assert (response.status_code, response.json()) == (
        400,
        invalid("Invalid query parameters", {"include": reason}),
    )


async def test_include_embeds_at_most_a_hundred_comments(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    """A bounded response: a ticket with more comments than an embed holds is a 400 naming the route that pages
    through them, never a cut list."""
    agent = TenantApi.agent(client, alpha)
    object_id = (await open_ticket(agent))["object_id"]
    for number in range(100):
        await add(agent, object_id, f"Comment {number}")
    embedded = (await shown(agent, object_id, include="comments"))["comments"]
    assert [comment["content"] for comment in embedded] == [f"Comment {number}" for number in range(100)]
    await add(agent, object_id, "One more")
    response = await client.get(f"{TICKETS}/{object_id}", params={"include": "comments"}, headers=agent.headers)
    reason = f"the ticket has more than 100 comments: read them with GET .../ticket/{object_id}/comments"
    assert (response.status_code, response.json()) == (400, invalid("Too many to embed", {"include": reason}))
    last = await listed(agent, object_id, page="2", per_page="100")
    assert [comment["content"] for comment in last["data"]] == ["One more"]


# --- tenants --------------------------------------------------------------------------------------------------


async def test_another_tenants_comments_are_not_found_by_any_route(
    client: httpx.AsyncClient, alpha: TenantSpec, beta: TenantSpec
) -> None:
    alpha_agent, beta_agent = TenantApi.agent(client, alpha), TenantApi.agent(client, beta)
    alphas = await open_ticket(alpha_agent)
    comment = await add(alpha_agent, alphas["object_id"], "Alpha's business", internal=True)
    betas = await open_ticket(beta_agent)
    # Both tenants number their tickets from REQ-0001: the same display ID names each tenant's own ticket.
    assert betas["object_id"] == alphas["object_id"]
    object_id = alphas["object_id"]

    assert (await listed(beta_agent, object_id))["data"] == []
    by_id = await client.get(comments_path(object_id, comment["id"]), headers=beta_agent.headers)
    assert (by_id.status_code, by_id.json()) == (404, comment_not_found(comment["id"]))
    assert (await shown(beta_agent, object_id, include="comments"))["comments"] == []
    assert [e["event"] for e in (await history(beta_agent, object_id))["data"]] == ["ticket.created"]
    # A ticket only alpha has is not found in beta by any comment route.
    only_alpha = (await open_ticket(alpha_agent))["object_id"]
    for response in (
        await beta_agent.comments(only_alpha),
        await beta_agent.comment(only_alpha, {"content": "Hi"}),
        await client.get(comments_path(only_alpha, comment["id"]), headers=beta_agent.headers),
    ):
        assert (response.status_code, response.json()) == (404, ticket_not_found(only_alpha))
    assert (await listed(alpha_agent, object_id))["data"] == [comment]


async def test_a_role_that_may_only_comment_reaches_only_its_own_tickets_and_adds_no_internal_notes(
    client: httpx.AsyncClient, tenant_factory: TenantFactory
) -> None:
    # A partner role listed under `comment` only: it grants commenting, not seeing what agents see.
    roles = {**ALPHA_ROLES, "comment": ["partner", "agent"]}
    tenant = await tenant_factory.fresh("partners", roles=roles)
    partner = TenantApi(client, tenant, token(tenant, roles=["partner"], subject="partner-1"))
    others = (await open_ticket(TenantApi.agent(client, tenant)))["object_id"]
    response = await partner.comment(others, {"content": "Hello"})
    assert (response.status_code, response.json()) == (404, ticket_not_found(others))
    own = (await open_ticket(TenantApi.agent(client, tenant, subject="partner-1")))["object_id"]
    await add(TenantApi.agent(client, tenant), own, "Internal", internal=True)
    assert (await add(partner, own, "Hello"))["content"] == "Hello"
    refused = await partner.comment(own, {"content": "Secret", "is_internal": True})
    assert (refused.status_code, refused.json()) == (401, permission_failure("add an internal note"))


async def test_a_comment_takes_at_most_twenty_files(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    object_id = (await open_ticket(agent))["object_id"]
    files = [{"filename": f"{n}.txt", "content": "aGkK", "mime_type": "text/plain"} for n in range(21)]
    response = await agent.comment(object_id, {"content": "Many", "attachments": files})
    assert response.status_code == 400, response.text
    assert response.json()["validationResult"]["reason"] == {"attachments": "Expected `array` of length <= 20"}
    assert (await listed(agent, object_id))["data"] == []
