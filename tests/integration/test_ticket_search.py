"""Finding tickets through GET /api/v2/ticketing/ticket: each filter (state, assignee, creator, time ranges, field
values and ranges), full-text search (`q`, read-your-writes, the display ID, ranking), each sort (a field in its
enum's order, numbers, text), exact totals, the customer restriction, and the 400 naming each bad parameter. Every
test works in a fresh tenant, on tickets whose values it chose, and asserts the exact result and total."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from app.ticket.listing import (
    FIELD_FORMAT,
    MIXED_FIELD,
    NOT_A_RANGE_FIELD,
    NOT_A_SORT_FIELD,
    TIME_FORMAT,
    UNKNOWN_FIELD,
    UNKNOWN_STATE,
    UNKNOWN_TYPE_FIELD,
)
from tests.support import (
    AGENT_SCOPE,
    ALPHA_ROLES,
    STATES,
    TICKETS,
    TenantApi,
    TenantFactory,
    TenantSpec,
    create_type,
    invalid,
    list_states,
    new_definition,
    new_field,
    new_ticket,
    token,
)

INVALID_QUERY = "Invalid query parameters"
PRIORITIES = ["low", "medium", "high", "urgent"]  # seed 004's order


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


@dataclass
class Seeded:
    """A type with one field of each kind, and six tickets T1..T6 (display IDs FIND-0001..FIND-0006) created in that
    order with the values below."""

    type_id: str
    f: dict[str, str]  # field key -> field UUID
    ids: list[str]  # object ids, T1 first

    def of(self, *numbers: int) -> list[str]:
        return [self.ids[n - 1] for n in numbers]


FIELDS = {
    "title": {"type": "string", "maxLength": 200},
    "body": {"type": "string"},
    "priority": {"enum": PRIORITIES},
    "points": {"type": "integer"},
    "due": {"type": ["string", "null"], "format": "date"},
    "deadline": {"type": "string", "format": "date-time"},
    "flag": {"type": "boolean"},
    "labels": {"type": "array", "items": {"type": "string"}},
}
TICKET_VALUES: list[dict[str, Any]] = [
    {
        "title": "Printer jammed on floor 2",
        "body": "Paper stuck in the tray",
        "priority": "high",
        "points": 5,
        "due": "2026-03-01",
        "deadline": "2026-03-01T10:00:00+02:00",
        "flag": True,
        "labels": ["hardware"],
    },
    {
        "title": "Laptop battery",
        "body": "Battery drains fast",
        "priority": "low",
        "points": 1,
        "due": "2026-01-15",
        "deadline": "2026-01-15T12:00:00Z",
        "flag": False,
    },
    {
        "title": "VPN down",
        "body": "<p>Cannot <b>connect</b> from home</p>",
        "priority": "urgent",
        "points": 8,
        "due": "2026-02-10",
        "deadline": "2026-02-10T08:00:00Z",
    },
    {"title": "Printer toner low", "priority": "medium", "points": 3, "due": None},
    {"title": "Coffee machine", "points": 13},
    {"title": "Broken chair", "priority": "", "body": ""},
]


async def seed(client: httpx.AsyncClient, tenant: TenantSpec, creators: tuple[str, ...] = ("agent-1",)) -> Seeded:
    admin = TenantApi.admin(client, tenant)
    fields = {key: new_field(key, schema) for key, schema in FIELDS.items()}
    created = await create_type(client, admin, new_definition(*fields.values(), prefix="FIND", name="Find"))
    f = {key: field["id"] for key, field in fields.items()}
    ids = []
    for index, values in enumerate(TICKET_VALUES):
        creator = TenantApi.agent(client, tenant, subject=creators[index % len(creators)])
        ticket = await new_ticket(creator, created["id"], {f[key]: value for key, value in values.items()})
        ids.append(ticket["objectId"])
    assert ids == [f"FIND-000{n}" for n in range(1, 7)]
    return Seeded(created["id"], f, ids)


async def listed(
    client: httpx.AsyncClient, api: TenantApi, params: dict[str, Any] | list[tuple[str, str]]
) -> tuple[list[str], int]:
    """The object ids of the first page (per_page 100) and the total."""
    query = list(params.items()) if isinstance(params, dict) else list(params)
    response = await client.get(TICKETS, params=[*query, ("per_page", "100")], headers=api.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    return [t["object_id"] for t in body["data"]], body["pagination"]["total"]


async def refused(client: httpx.AsyncClient, api: TenantApi, params: dict[str, str]) -> dict[str, Any]:
    response = await client.get(TICKETS, params=params, headers=api.headers)
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    return body


# ---------------------------------------------------------------------------------------------------------------
# state, assignee, creator, time ranges


async def test_state_filter_by_name_in_any_case_or_by_id(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    seeded = await seed(client, alpha)
    for object_id in seeded.of(1, 3):
        etag = (await agent.get(object_id)).json()["etag"]
        moved = await agent.change_status(object_id, {"etag": etag, "state": "open"})
        assert moved.status_code == 200, moved.text
    states = {state["name"]: state["id"] for state in await list_states(agent)}

    assert await listed(client, agent, {"state": "open"}) == (seeded.of(3, 1), 2)
    assert await listed(client, agent, {"state": "OPEN"}) == (seeded.of(3, 1), 2)
    assert await listed(client, agent, {"state": states["open"]}) == (seeded.of(3, 1), 2)
    assert await listed(client, agent, {"state": "new"}) == (seeded.of(6, 5, 4, 2), 4)
    assert await listed(client, agent, [("state", "new"), ("state", "Open")]) == (seeded.of(6, 5, 4, 3, 2, 1), 6)
    assert await listed(client, agent, {"state": "closed"}) == ([], 0)


async def test_unknown_states_are_refused_by_name(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    body = await refused(client, agent, {"state": "opne"})
    assert body == invalid(INVALID_QUERY, {"state": f"{UNKNOWN_STATE}: 'opne'"})
    unknown_id = str(uuid.uuid4())
    response = await client.get(TICKETS, params=[("state", "open"), ("state", unknown_id)], headers=agent.headers)
    assert response.json() == invalid(INVALID_QUERY, {"state": f"{UNKNOWN_STATE}: '{unknown_id}'"})


async def test_a_state_created_after_the_cache_was_filled_is_found(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    assert await listed(client, agent, {"state": "new"}) == ([], 0)  # fills the worker's state cache
    admin = TenantApi.admin(client, alpha)
    created = await client.post(STATES, json={"name": "Waiting for parts", "state_type": "open"}, headers=admin.headers)
    assert created.status_code == 201, created.text
    assert await listed(client, agent, {"state": "waiting for parts"}) == ([], 0)


async def test_assignee_filter_and_unassigned(
    client: httpx.AsyncClient, alpha: TenantSpec, db: asyncpg.Connection
) -> None:
    agent = TenantApi.agent(client, alpha)
    seeded = await seed(client, alpha)
    for object_id, assignee in zip(seeded.of(1, 2, 3), ("agent-7", "agent-7", "agent-8"), strict=True):
        await db.execute(
            "UPDATE ticket SET assignee = $3 WHERE tenant_id = $1 AND object_id = $2", alpha.id, object_id, assignee
        )
    assert await listed(client, agent, {"assignee": "agent-7"}) == (seeded.of(2, 1), 2)
    assert await listed(client, agent, {"assignee": "agent-8"}) == (seeded.of(3), 1)
    assert await listed(client, agent, {"assignee": "none"}) == (seeded.of(6, 5, 4), 3)
    assert await listed(client, agent, {"assignee": "agent-9"}) == ([], 0)


async def test_created_by_filter(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    seeded = await seed(client, alpha, creators=("agent-1", "agent-2", "agent-3"))
    assert await listed(client, agent, {"created_by": "agent-2"}) == (seeded.of(5, 2), 2)
    assert await listed(client, agent, {"created_by": "agent-3", "sort": "created_at", "order": "asc"}) == (
        seeded.of(3, 6),
        2,
    )
    assert await listed(client, agent, {"created_by": "nobody"}) == ([], 0)


async def test_time_ranges_include_the_start_and_exclude_the_end(
    client: httpx.AsyncClient, alpha: TenantSpec, db: asyncpg.Connection
) -> None:
    agent = TenantApi.agent(client, alpha)
    seeded = await seed(client, alpha)
    for day, object_id in enumerate(seeded.ids, start=1):
        await db.execute(
            "UPDATE ticket SET created_at = $3::text::timestamptz, updated_at = $4::text::timestamptz "
            "WHERE tenant_id = $1 AND object_id = $2",
            alpha.id,
            object_id,
            f"2026-01-0{day}T00:00:00Z",
            f"2026-02-0{7 - day}T12:00:00Z",  # updated in the reverse order
        )
    window = {"created_after": "2026-01-02T00:00:00Z", "created_before": "2026-01-04T00:00:00Z"}
    assert await listed(client, agent, window) == (seeded.of(3, 2), 2)
    # Another offset, and "+" sent unencoded (it arrives as a space).
    shifted = await client.get(f"{TICKETS}?created_after=2026-01-02T01:00:00+01:00&per_page=100", headers=agent.headers)
    assert [t["object_id"] for t in shifted.json()["data"]] == seeded.of(6, 5, 4, 3, 2)
    updated = {"updated_after": "2026-02-02T12:00:00Z", "updated_before": "2026-02-04T00:00:00Z"}
    assert await listed(client, agent, {**updated, "sort": "updated_at", "order": "asc"}) == (seeded.of(5, 4), 2)


@pytest.mark.parametrize(
    "value", ["2026-01-01", "2026-01-01T00:00:00", "yesterday", "", "2026-13-01T00:00:00Z", "0001-01-01T00:00:00+01:00"]
)
@pytest.mark.parametrize("name", ["created_after", "created_before", "updated_after", "updated_before"])
async def test_a_bad_time_is_refused_naming_its_parameter(
    client: httpx.AsyncClient, alpha: TenantSpec, name: str, value: str
) -> None:
    body = await refused(client, TenantApi.agent(client, alpha), {name: value})
    assert body == invalid(INVALID_QUERY, {name: TIME_FORMAT})


# ---------------------------------------------------------------------------------------------------------------
# field values


async def test_field_equality_and_number_ranges(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    seeded = await seed(client, alpha)
    points = f"data.{seeded.f['points']}"
    assert await listed(client, agent, {f"data.{seeded.f['priority']}": "high"}) == (seeded.of(1), 1)
    assert await listed(client, agent, {points: "8"}) == (seeded.of(3), 1)
    assert await listed(client, agent, {f"{points}.gte": "3"}) == (seeded.of(5, 4, 3, 1), 4)
    assert await listed(client, agent, {f"{points}.gt": "3", f"{points}.lte": "8"}) == (seeded.of(3, 1), 2)
    assert await listed(client, agent, {f"{points}.lt": "3.5"}) == (seeded.of(4, 2), 2)
    assert await listed(client, agent, {f"{points}.gte": "-1e3", f"{points}.lt": "1"}) == ([], 0)
    both = {f"data.{seeded.f['flag']}": "false", f"{points}.gte": "1"}
    assert await listed(client, agent, both) == (seeded.of(2), 1)


async def test_date_and_date_time_ranges(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    seeded = await seed(client, alpha)
    due, deadline = f"data.{seeded.f['due']}", f"data.{seeded.f['deadline']}"
    assert await listed(client, agent, {f"{due}.gte": "2026-02-01"}) == (seeded.of(3, 1), 2)
    assert await listed(client, agent, {f"{due}.lt": "2026-02-10"}) == (seeded.of(2), 1)
    assert await listed(client, agent, {f"{due}.lte": "2026-02-10"}) == (seeded.of(3, 2), 2)
    # T1's deadline is 08:00 UTC, written with +02:00; T2's and T3's end in Z.
    assert await listed(client, agent, {f"{deadline}.gte": "2026-03-01T08:00:00Z"}) == (seeded.of(1), 1)
    assert await listed(client, agent, {f"{deadline}.lt": "2026-03-01T09:00:00+01:00"}) == (seeded.of(3, 2), 2)
    window = {f"{deadline}.gt": "2026-01-15T12:00:00Z", f"{deadline}.lte": "2026-02-10T09:00:00+01:00"}
    assert await listed(client, agent, window) == (seeded.of(3), 1)


async def test_bad_field_filters_are_refused_naming_each(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    seeded = await seed(client, alpha)
    f = seeded.f
    unknown = str(uuid.uuid4())
    body = await refused(
        client,
        agent,
        {
            f"data.{f['title']}.gte": "a",
            f"data.{f['labels']}.lt": "1",
            f"data.{f['priority']}.gt": "low",
            f"data.{f['points']}.gte": "many",
            f"data.{f['due']}.gte": "2026-02-30",
            f"data.{f['deadline']}.lt": "2026-02-01",
            f"data.{unknown}": "x",
            f"data.{f['points']}.between": "1",
        },
    )
    assert body == invalid(
        INVALID_QUERY,
        {
            f"data.{f['title']}.gte": NOT_A_RANGE_FIELD.format(kind="text"),
            f"data.{f['labels']}.lt": NOT_A_RANGE_FIELD.format(kind="neither a number, text nor an enum"),
            f"data.{f['priority']}.gt": NOT_A_RANGE_FIELD.format(kind="an enum field"),
            f"data.{f['points']}.gte": "must be a number",
            f"data.{f['due']}.gte": "must be a date, YYYY-MM-DD",
            f"data.{f['deadline']}.lt": TIME_FORMAT,
            f"data.{unknown}": UNKNOWN_FIELD,
            f"data.{f['points']}.between": FIELD_FORMAT,
        },
    )
    for bound in ("NaN", "true", '"3"', "[3]"):
        assert (await refused(client, agent, {f"data.{f['points']}.gte": bound}))["validationResult"] == {
            "reason": {f"data.{f['points']}.gte": "must be a number"}
        }


async def test_ticket_type_id_chooses_where_a_field_is_looked_up(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    admin = TenantApi.admin(client, alpha)
    shared = new_field("size", {"type": "integer"})
    as_text = {**shared, "schema": {"type": "string"}}
    numbers = await create_type(client, admin, new_definition(shared, prefix="NUM", name="Numbers"))
    texts = await create_type(client, admin, new_definition(as_text, prefix="TXT", name="Texts"))
    other = await create_type(client, admin, new_definition(prefix="OTH", name="Other"))
    await new_ticket(agent, numbers["id"], {shared["id"]: 5})
    await new_ticket(agent, texts["id"], {shared["id"]: "5"})
    name = f"data.{shared['id']}.gte"
    assert (await refused(client, agent, {name: "1"}))["validationResult"] == {"reason": {name: MIXED_FIELD}}
    assert await listed(client, agent, {name: "1", "ticket_type_id": numbers["id"]}) == (["NUM-0001"], 1)
    refusal = await refused(client, agent, {name: "1", "ticket_type_id": texts["id"]})
    assert refusal["validationResult"] == {"reason": {name: NOT_A_RANGE_FIELD.format(kind="text")}}
    refusal = await refused(client, agent, {name: "1", "ticket_type_id": other["id"]})
    assert refusal["validationResult"] == {"reason": {name: UNKNOWN_TYPE_FIELD}}
    # Equality needs no kind: the values are compared as JSON.
    assert await listed(client, agent, {f"data.{shared['id']}": '"5"'}) == (["TXT-0001"], 1)


# ---------------------------------------------------------------------------------------------------------------
# full-text search


async def test_q_searches_every_text_of_the_data(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    seeded = await seed(client, alpha)
    assert sorted((await listed(client, agent, {"q": "printer"}))[0]) == seeded.of(1, 4)
    assert (await listed(client, agent, {"q": "printer"}))[1] == 2
    assert await listed(client, agent, {"q": "PRINTER -toner"}) == (seeded.of(1), 1)
    assert await listed(client, agent, {"q": '"stuck in the tray"'}) == (seeded.of(1), 1)
    assert await listed(client, agent, {"q": '"tray stuck"'}) == ([], 0)
    assert await listed(client, agent, {"q": "connect"}) == (seeded.of(3), 1)  # inside HTML
    assert await listed(client, agent, {"q": "hardware"}) == (seeded.of(1), 1)  # an array's strings
    assert await listed(client, agent, {"q": "urgent"}) == (seeded.of(3), 1)  # an enum's value is text too
    assert await listed(client, agent, {"q": "coffee or battery", "sort": "created_at"}) == (seeded.of(5, 2), 2)
    assert await listed(client, agent, {"q": "b"}) == ([], 0)  # whole words only: <b> is markup
    assert await listed(client, agent, {"q": "!!!"}) == ([], 0)  # nothing to search for finds nothing
    assert await listed(client, agent, {"q": "printer", "state": "new", f"data.{seeded.f['points']}.gt": "4"}) == (
        seeded.of(1),
        1,
    )


async def test_q_finds_the_display_id(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    seeded = await seed(client, alpha)
    assert await listed(client, agent, {"q": "FIND-0003"}) == (seeded.of(3), 1)
    assert await listed(client, agent, {"q": "find-0003"}) == (seeded.of(3), 1)
    assert await listed(client, agent, {"q": "0003"}) == (seeded.of(3), 1)
    assert await listed(client, agent, {"q": "FIND-0007"}) == ([], 0)


async def test_a_ticket_is_found_by_its_new_text_the_moment_its_update_is_answered(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    seeded = await seed(client, alpha)
    object_id = seeded.of(2)[0]
    for round_ in range(3):
        etag = (await agent.get(object_id)).json()["etag"]
        old, new = ("drains", "flickers") if round_ % 2 == 0 else ("flickers", "drains")
        updated = await agent.update(object_id, {"etag": etag, "ticketUpdate": {seeded.f["body"]: f"Screen {new}"}})
        assert updated.status_code == 200, updated.text
        assert await listed(client, agent, {"q": new}) == ([object_id], 1)
        assert await listed(client, agent, {"q": old}) == ([], 0)
    created = await new_ticket(agent, seeded.type_id, {seeded.f["title"]: "Kettle descaling"})
    assert await listed(client, agent, {"q": "descaling"}) == ([created["objectId"]], 1)


async def test_best_matches_come_first_unless_another_sort_is_asked(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    seeded = await seed(client, alpha)
    f = seeded.f
    often = await new_ticket(agent, seeded.type_id, {f["title"]: "network", f["body"]: "network network network"})
    once = await new_ticket(agent, seeded.type_id, {f["title"]: "Desk lamp", f["body"]: "a long text about a network"})
    # The display ID weighs most: FIND-0009 names it, and "network" alone matches the other two.
    by_id = await new_ticket(agent, seeded.type_id, {f["title"]: "Router"})
    assert await listed(client, agent, {"q": "network"}) == ([often["objectId"], once["objectId"]], 2)
    assert await listed(client, agent, {"q": "network", "order": "asc"}) == ([once["objectId"], often["objectId"]], 2)
    assert await listed(client, agent, {"q": "network", "sort": "created_at"}) == (
        [once["objectId"], often["objectId"]],
        2,
    )
    assert await listed(client, agent, {"q": "network or 0009"}) == (
        [by_id["objectId"], often["objectId"], once["objectId"]],
        3,
    )


async def test_every_page_of_a_search_has_the_exact_total(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    seeded = await seed(client, alpha)
    everything, total = await listed(client, agent, {"q": "printer or battery or vpn"})
    assert (sorted(everything), total) == (seeded.of(1, 2, 3, 4), 4)
    for page in (1, 2, 3, 4, 5, 9):
        response = await client.get(
            TICKETS, params={"q": "printer or battery or vpn", "per_page": 1, "page": page}, headers=agent.headers
        )
        body = response.json()
        assert [t["object_id"] for t in body["data"]] == everything[page - 1 : page]
        assert (body["pagination"]["total"], body["pagination"]["last_page"]) == (4, 4)


async def test_a_ticket_with_a_megabyte_of_distinct_words_is_stored_and_found(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    # Indexed whole, such a text would make a tsvector over PostgreSQL's 1 MB limit: the write would fail.
    agent = TenantApi.agent(client, alpha)
    admin = TenantApi.admin(client, alpha)
    text = new_field("text", {"type": "string"})
    created = await create_type(client, admin, new_definition(text, prefix="BIG", name="Big"))
    words = " ".join(f"w{n:x}" for n in range(130_000))  # about 840,000 characters, all distinct words
    ticket = await new_ticket(agent, created["id"], {text["id"]: words})
    assert await listed(client, agent, {"q": "w0 w1f3"}) == ([ticket["objectId"]], 1)
    assert await listed(client, agent, {"q": f"w{100_000:x}"}) == ([], 0)  # beyond the first 100,000 characters


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"q": ""}, {"q": "Expected `str` of length >= 1"}),
        ({"q": "x" * 501}, {"q": "Expected `str` of length <= 500"}),
    ],
)
async def test_q_must_be_1_to_500_characters(
    client: httpx.AsyncClient, alpha: TenantSpec, params: dict[str, str], reason: dict[str, str]
) -> None:
    body = await refused(client, TenantApi.agent(client, alpha), params)
    assert body == invalid("The request failed validation", reason)


async def test_nul_in_a_text_parameter_is_refused_naming_it(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    nul = "text may not contain the NUL character (\\u0000)"
    agent = TenantApi.agent(client, alpha)
    for name in ("q", "assignee", "created_by", "state"):
        assert await refused(client, agent, {name: "a\x00"}) == invalid(INVALID_QUERY, {name: nul})


# ---------------------------------------------------------------------------------------------------------------
# sorting


async def all_pages(client: httpx.AsyncClient, api: TenantApi, params: dict[str, str], per_page: int) -> list[str]:
    """Every ticket, page by page, checking each page's total."""
    found: list[str] = []
    page = 1
    while True:
        response = await client.get(TICKETS, params={**params, "per_page": per_page, "page": page}, headers=api.headers)
        body = response.json()
        found += [t["object_id"] for t in body["data"]]
        if body["pagination"]["next_page_url"] is None:
            return found
        page += 1


async def test_sort_by_an_enum_field_follows_the_enum_order(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    seeded = await seed(client, alpha)
    # T5 has no priority, T6 a cleared one: both last, in creation order (by the sort's direction).
    ascending = seeded.of(2, 4, 1, 3, 5, 6)
    descending = seeded.of(3, 1, 4, 2, 6, 5)
    sort = f"data.{seeded.f['priority']}"
    assert await listed(client, agent, {"sort": sort, "order": "asc"}) == (ascending, 6)
    assert await listed(client, agent, {"sort": sort}) == (descending, 6)
    for per_page in (1, 2, 4):
        assert await all_pages(client, agent, {"sort": sort, "order": "asc"}, per_page) == ascending
        assert await all_pages(client, agent, {"sort": sort, "order": "desc"}, per_page) == descending
    # Filtered, and with ties: two more "high" tickets, newer than T1.
    extra = [await new_ticket(agent, seeded.type_id, {seeded.f["title"]: "x", seeded.f["priority"]: "high"})]
    extra.append(await new_ticket(agent, seeded.type_id, {seeded.f["title"]: "y", seeded.f["priority"]: "high"}))
    newer = [t["objectId"] for t in extra]
    assert await listed(client, agent, {"sort": sort, f"data.{seeded.f['points']}.gte": "3"}) == (
        seeded.of(3, 1, 4, 5),
        4,
    )
    assert await listed(client, agent, {"sort": sort, "order": "desc", "q": "printer or x or y"}) == (
        [*newer[::-1], *seeded.of(1, 4)],
        4,
    )
    assert await listed(client, agent, {"sort": sort, "order": "asc", "state": "new"}) == (
        seeded.of(2, 4, 1) + newer + seeded.of(3, 5, 6),
        8,
    )


async def test_sort_by_number_text_date_and_boolean_fields(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    seeded = await seed(client, alpha)
    f = seeded.f

    async def order(key: str, direction: str) -> list[str]:
        ids, total = await listed(client, agent, {"sort": f"data.{f[key]}", "order": direction})
        assert total == 6
        return ids

    assert await order("points", "asc") == seeded.of(2, 4, 1, 3, 5, 6)
    assert await order("points", "desc") == seeded.of(5, 3, 1, 4, 2, 6)
    assert await order("title", "asc") == seeded.of(6, 5, 2, 1, 4, 3)
    assert await order("due", "asc") == seeded.of(2, 3, 1, 4, 5, 6)  # T4's null, T5's absent: last
    assert await order("due", "desc") == seeded.of(1, 3, 2, 6, 5, 4)
    assert await order("flag", "asc") == seeded.of(2, 1, 3, 4, 5, 6)
    assert await order("body", "desc") == seeded.of(1, 2, 3, 6, 5, 4)  # "<p>..." sorts as its text; T6's "" is none


async def test_bad_sorts_are_refused(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    agent = TenantApi.agent(client, alpha)
    seeded = await seed(client, alpha)
    unknown = str(uuid.uuid4())
    for sort, reason in [
        ("title", "one of created_at, updated_at, data.<field-uuid>"),
        ("created_at\n", "one of created_at, updated_at, data.<field-uuid>"),
        ("relevance", "one of created_at, updated_at, data.<field-uuid>"),
        (f"data.{unknown}", UNKNOWN_FIELD),
        (f"data.{seeded.f['labels']}", NOT_A_SORT_FIELD.format(kind="neither a number, text nor an enum")),
    ]:
        assert await refused(client, agent, {"sort": sort}) == invalid(INVALID_QUERY, {"sort": reason})


# ---------------------------------------------------------------------------------------------------------------
# who sees what


async def test_a_customer_lists_only_the_tickets_it_created(
    client: httpx.AsyncClient, tenant_factory: TenantFactory, db: asyncpg.Connection
) -> None:
    tenant = await tenant_factory.fresh("customers", roles={**ALPHA_ROLES, "customer": ["customer"]})
    seeded = await seed(client, tenant)  # by agent-1

    def customer(subject: str) -> TenantApi:
        return TenantApi(client, tenant, token(tenant, roles=["customer"], scope=AGENT_SCOPE, subject=subject))

    ada, bob = customer("ada"), customer("bob")
    # Written under the customers' subjects (creating is the ticket routes' business, not the list's).
    as_ada, as_bob = TenantApi.agent(client, tenant, subject="ada"), TenantApi.agent(client, tenant, subject="bob")
    mine = [(await new_ticket(as_ada, seeded.type_id, {seeded.f["title"]: f"Printer {n}"}))["objectId"] for n in (1, 2)]
    theirs = (await new_ticket(as_bob, seeded.type_id, {seeded.f["title"]: "Printer 3"}))["objectId"]

    assert await listed(client, ada, {}) == (mine[::-1], 2)
    assert await listed(client, ada, {"q": "printer"}) == (sorted(mine, reverse=True), 2)
    assert await listed(client, ada, {"created_by": "ada"}) == (mine[::-1], 2)
    assert await listed(client, ada, {"created_by": "bob"}) == ([], 0)
    assert await listed(client, ada, {"created_by": "agent-1"}) == ([], 0)
    refusal = await refused(client, ada, {"created_by": "bob", "created_after": "soon"})
    assert refusal["validationResult"] == {"reason": {"created_after": TIME_FORMAT}}
    assert await listed(client, bob, {"sort": f"data.{seeded.f['priority']}"}) == ([theirs], 1)
    everything, total = await listed(client, TenantApi.agent(client, tenant), {})
    assert (set(everything), total) == ({*seeded.ids, *mine, theirs}, 9)

    await db.execute("UPDATE ticket SET deleted_at = now() WHERE tenant_id = $1 AND object_id = $2", tenant.id, mine[0])
    assert await listed(client, ada, {}) == ([mine[1]], 1)
    assert (await listed(client, TenantApi.agent(client, tenant), {}))[1] == 8


async def test_deleted_tickets_are_never_listed(
    client: httpx.AsyncClient, alpha: TenantSpec, db: asyncpg.Connection
) -> None:
    agent = TenantApi.agent(client, alpha)
    seeded = await seed(client, alpha)
    await db.execute(
        "UPDATE ticket SET deleted_at = now() WHERE tenant_id = $1 AND object_id = $2", alpha.id, seeded.ids[0]
    )
    assert await listed(client, agent, {"q": "printer"}) == (seeded.of(4), 1)
    assert await listed(client, agent, {"state": "new"}) == (seeded.of(6, 5, 4, 3, 2), 5)
    assert await listed(client, agent, {"sort": f"data.{seeded.f['priority']}"}) == (seeded.of(3, 4, 2, 6, 5), 5)


async def test_another_tenants_tickets_never_appear(
    client: httpx.AsyncClient, alpha: TenantSpec, beta: TenantSpec
) -> None:
    alpha_seeded = await seed(client, alpha)
    beta_agent = TenantApi.agent(client, beta)
    beta_type = await create_type(client, TenantApi.admin(client, beta), new_definition(prefix="FIND", name="Find"))
    beta_title = beta_type["fields"][0]["id"]
    own = await new_ticket(beta_agent, beta_type["id"], {beta_title: "Printer in beta"})
    assert await listed(client, beta_agent, {"q": "printer"}) == ([own["objectId"]], 1)
    assert await listed(client, beta_agent, {"q": "FIND-0003"}) == ([], 0)
    assert await listed(client, beta_agent, {"state": "new"}) == ([own["objectId"]], 1)
    assert await listed(client, beta_agent, {"created_by": "agent-1"}) == ([own["objectId"]], 1)
    # Alpha's fields are unknown in beta.
    refusal = await refused(client, beta_agent, {"sort": f"data.{alpha_seeded.f['priority']}"})
    assert refusal["validationResult"] == {"reason": {"sort": UNKNOWN_FIELD}}
