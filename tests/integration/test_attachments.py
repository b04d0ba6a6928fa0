"""Attachments on the wire: streamed uploads (larger than the JSON body limit, without the server holding them),
type detection, safe names, interrupted uploads, per-tenant limits, downloads with Range and ETag, deletion and its
history, customers, other tenants, inline files on create and ?include=attachments, and what happens to blobs when
rows go (the orphan sweep, a deleted ticket)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import random
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import asyncpg
import httpx
import pytest

from app.attachment.repository import AttachmentRepository
from app.attachment.service import AttachmentStore
from app.attachment.storage import FileSystemBlobStore, blob_key
from app.db.database import Database
from app.tenancy.model import AttachmentLimits
from tests.support import (
    ALPHA_ROLES,
    ATTACHMENTS,
    CATALOG,
    FORM_CONTENT_TYPE,
    FORM_END,
    PNG_HEAD,
    TICKETS,
    LiveServer,
    TenantApi,
    TenantFactory,
    TenantSpec,
    field_ids,
    form,
    form_part_head,
    invalid,
    ticket_not_found,
    token,
    upload,
)

MIB = 1024 * 1024
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>\n"
# A deadline for what the server does on its own after a client went away; met in milliseconds when all is well.
SETTLE_SECONDS = 10.0


def png(size: int, seed: int = 1) -> bytes:
    return PNG_HEAD + random.Random(seed).randbytes(size - len(PNG_HEAD))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def attachment_not_found(attachment_id: str) -> dict[str, Any]:
    return {"error": True, "message": f"Attachment not found ({attachment_id})"}


def blob_root(workspace: Path) -> Path:
    return workspace / "data" / "attachments"


def blobs_of(workspace: Path, tenant: TenantSpec) -> dict[str, bytes]:
    """The tenant's blobs on disk: attachment id -> bytes."""
    folder = blob_root(workspace) / str(tenant.id)
    return {path.name: path.read_bytes() for path in folder.iterdir()} if folder.exists() else {}


def files_under(workspace: Path) -> set[Path]:
    """Every file in the server's data folder (where a name that escaped its folder would land)."""
    return {path for path in (workspace / "data").rglob("*") if path.is_file()}


def partial_files(workspace: Path) -> list[Path]:
    folder = blob_root(workspace) / ".partial"
    return sorted(folder.iterdir()) if folder.exists() else []


async def new_request(api: TenantApi, title: str = "with files") -> str:
    """A new REQ ticket's display ID."""
    request_type = await api.ticket_type("REQ")
    created = await api.create(request_type["id"], {field_ids(request_type)["title"]: title})
    assert created.status_code == 201, created.text
    object_id: str = created.json()["objectId"]
    return object_id


async def history(api: TenantApi, object_id: str) -> list[dict[str, Any]]:
    response = await api.http.get(f"{TICKETS}/{object_id}/history", headers=api.headers, params={"per_page": "100"})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def listed(api: TenantApi, object_id: str) -> list[dict[str, Any]]:
    response = await api.http.get(f"{TICKETS}/{object_id}/attachments", headers=api.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def attachment_rows(database_url: str, tenant: TenantSpec) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database_url)
    try:
        return await connection.fetch(
            "SELECT id, filename, deleted_at FROM attachment WHERE tenant_id = $1 ORDER BY created_at", tenant.id
        )
    finally:
        await connection.close()


@pytest.fixture
async def agent(client: httpx.AsyncClient, alpha: TenantSpec) -> TenantApi:
    return TenantApi.agent(client, alpha)


# ---------------------------------------------------------------------------------------------------------------
# a round trip, streamed both ways


async def test_a_file_many_times_the_json_body_limit_goes_up_and_comes_back_byte_for_byte_without_being_held(
    client: httpx.AsyncClient, tenant_factory: TenantFactory, workspace: Path
) -> None:
    tenant = await tenant_factory.fresh("large", attachments={"max_file_bytes": 64 * MIB})
    api = TenantApi.agent(client, tenant)
    object_id = await new_request(api)
    size = 24 * MIB  # the JSON body limit (MAX_BODY_BYTES) is 1 MiB
    chunk = 64 * 1024
    sent = hashlib.sha256()
    head = form_part_head("scan.png", "image/png")

    async def body() -> AsyncIterator[bytes]:
        source = random.Random(7)
        yield head
        for offset in range(0, size, chunk):
            piece = (PNG_HEAD + source.randbytes(chunk - len(PNG_HEAD))) if offset == 0 else source.randbytes(chunk)
            sent.update(piece)
            yield piece
        yield FORM_END

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        response = await client.post(
            f"{TICKETS}/{object_id}/attachments",
            headers={
                **api.headers,
                "content-type": FORM_CONTENT_TYPE,
                "content-length": str(len(head) + size + len(FORM_END)),
            },
            content=body(),
            timeout=60,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 201, response.text
    # Client and server share this process: together they never held more than a few chunks of the 24 MiB.
    assert peak < 4 * MIB, peak
    created = response.json()
    assert created["size"] == size
    assert created["sha256"] == sent.hexdigest()
    assert created["mime_type"] == "image/png"
    assert response.headers["location"] == created["url"] == f"{ATTACHMENTS}/{created['id']}"
    assert hashlib.sha256(blobs_of(workspace, tenant)[created["id"]]).hexdigest() == sent.hexdigest()

    received = hashlib.sha256()
    async with client.stream("GET", created["url"], headers=api.headers, timeout=60) as download:
        assert download.status_code == 200
        assert download.headers["content-length"] == str(size)
        async for piece in download.aiter_bytes():
            received.update(piece)
    assert received.hexdigest() == sent.hexdigest()

    # The JSON routes keep their limit.
    request_type = await api.ticket_type("REQ")
    oversized = {"ticketTypeId": request_type["id"], "data": {field_ids(request_type)["title"]: "x" * (2 * MIB)}}
    refused = await client.post(TICKETS, params=CATALOG, headers=api.headers, json=oversized)
    assert refused.status_code == 413
    assert refused.json()["code"] == "PAYLOAD_TOO_LARGE"


# ---------------------------------------------------------------------------------------------------------------
# what a file is and what it is called


async def test_html_claiming_to_be_a_png_is_refused_and_nothing_is_kept(
    agent: TenantApi, alpha: TenantSpec, workspace: Path
) -> None:
    object_id = await new_request(agent)
    before = await history(agent, object_id)

    response = await upload(agent, object_id, "cat.png", HTML, "image/png")

    problem = "declared image/png, but the content is text"
    assert (response.status_code, response.json()) == (
        400,
        invalid(f"The file 'cat.png' was refused: {problem}", {"file": problem}),
    )
    assert await listed(agent, object_id) == []
    assert blobs_of(workspace, alpha) == {}
    assert await history(agent, object_id) == before


@pytest.mark.parametrize(
    ("content", "declared", "problem"),
    [
        (png(100), "application/pdf", "declared application/pdf, but the content is image/png"),
        (png(100), "text/plain", "declared text/plain, but the content is image/png"),
        (HTML, "text/html", "files of type text/html are not accepted"),
        (bytes(range(256)) * 4, None, "files of type application/octet-stream are not accepted"),
        (bytes(range(256)) * 4, "text/plain", "declared text/plain, but the content is binary data of no known type"),
        (b"", "text/plain", "the file is empty"),
    ],
    ids=["png as pdf", "png as text", "html", "unknown binary", "binary as text", "empty"],
)
async def test_files_whose_type_is_contradicted_or_not_accepted_are_refused_naming_them(
    agent: TenantApi, alpha: TenantSpec, workspace: Path, content: bytes, declared: str | None, problem: str
) -> None:
    object_id = await new_request(agent)
    response = await upload(agent, object_id, "report.bin", content, declared)
    assert (response.status_code, response.json()) == (
        400,
        invalid(f"The file 'report.bin' was refused: {problem}", {"file": problem}),
    )
    assert await listed(agent, object_id) == []
    assert blobs_of(workspace, alpha) == {}


@pytest.mark.parametrize(
    ("content", "declared", "stored"),
    [
        (png(300), "image/png", "image/png"),
        (png(300), None, "image/png"),
        (png(300), "application/octet-stream", "image/png"),
        (png(300), "image/x-png", "image/png"),
        (b"a,b\n1,2\n", "text/csv", "text/csv"),
        (b"plain words\n", None, "text/plain"),
        (b'{"a": 1}', "application/json; charset=utf-8", "application/json"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "application/pdf", "application/pdf"),
    ],
)
async def test_the_stored_type_is_read_from_the_content(
    agent: TenantApi, content: bytes, declared: str | None, stored: str
) -> None:
    object_id = await new_request(agent)
    response = await upload(agent, object_id, "file", content, declared)
    assert response.status_code == 201, response.text
    assert response.json()["mime_type"] == stored
    download = await agent.http.get(response.json()["url"], headers=agent.headers)
    assert download.content == content
    assert download.headers["content-type"].split(";")[0] == stored


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("../../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("/var/data/..", "attachment"),
        ("..", "attachment"),
        ("", "attachment"),
        ("report\x00\x07.txt", "report.txt"),
        ("invoice\u202etxt.exe", "invoicetxt.exe"),
        ("..hidden..txt", "hidden.txt"),
        ("a<b>c:d|e?*.txt", "a_b_c_d_e__.txt"),
        ("résumé 2026.txt", "résumé 2026.txt"),
        ("x" * 300 + ".txt", "x" * 251 + ".txt"),
    ],
)
async def test_file_names_are_reduced_to_a_safe_name(
    agent: TenantApi, alpha: TenantSpec, workspace: Path, sent: str, stored: str
) -> None:
    object_id = await new_request(agent)
    before = files_under(workspace)
    response = await upload(agent, object_id, sent, b"some text\n", "text/plain")
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["filename"] == stored
    # The one new file anywhere is the blob, named by the attachment's id in the tenant's folder.
    assert files_under(workspace) - before == {blob_root(workspace) / str(alpha.id) / created["id"]}
    download = await agent.http.get(created["url"], headers=agent.headers)
    assert download.headers["content-disposition"].endswith("''" + quote(stored, safe=""))


# ---------------------------------------------------------------------------------------------------------------
# an upload that never ends


async def test_an_upload_killed_half_way_leaves_no_row_no_blob_and_no_partial_file(
    server: LiveServer, agent: TenantApi, alpha: TenantSpec, workspace: Path, migrated: str
) -> None:
    object_id = await new_request(agent)
    before = await history(agent, object_id)
    head = form_part_head("half.png", "image/png")
    size = 8 * MIB
    url = urlsplit(server.url)
    request = (
        f"POST {TICKETS}/{object_id}/attachments HTTP/1.1\r\nhost: {url.netloc}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in agent.headers.items())
        + f"content-type: {FORM_CONTENT_TYPE}\r\ncontent-length: {len(head) + size + len(FORM_END)}\r\n\r\n"
    )
    assert partial_files(workspace) == []
    _, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(request.encode() + head + png(2 * MIB))
    await writer.drain()
    # The server is writing the file: its partial blob exists.
    deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
    while not partial_files(workspace):
        assert asyncio.get_running_loop().time() < deadline, "the upload never reached the blob store"
        await asyncio.sleep(0.02)

    writer.transport.abort()  # the client dies: the connection is reset mid-body

    deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
    while partial_files(workspace):
        assert asyncio.get_running_loop().time() < deadline, "the partial blob was left behind"
        await asyncio.sleep(0.02)
    assert blobs_of(workspace, alpha) == {}
    assert await attachment_rows(migrated, alpha) == []
    assert await listed(agent, object_id) == []
    assert await history(agent, object_id) == before


# ---------------------------------------------------------------------------------------------------------------
# limits per tenant


async def test_the_tenants_limits_per_file_per_ticket_and_of_types_hold(
    client: httpx.AsyncClient, tenant_factory: TenantFactory, workspace: Path
) -> None:
    tenant = await tenant_factory.fresh(
        "limits", attachments={"max_file_bytes": 1000, "max_ticket_bytes": 2500, "allowed_types": ["image/*"]}
    )
    api = TenantApi.agent(client, tenant)
    object_id = await new_request(api)

    over = await upload(api, object_id, "big.png", png(1001), "image/png")
    assert (over.status_code, over.json()) == (
        413,
        {
            "error": True,
            "code": "PAYLOAD_TOO_LARGE",
            "message": "The file 'big.png' is larger than the limit of 1000 bytes per file",
            "status": 413,
        },
    )
    first = await upload(api, object_id, "one.png", png(1000, 1), "image/png")
    second = await upload(api, object_id, "two.png", png(1000, 2), "image/png")
    assert (first.status_code, second.status_code) == (201, 201)
    # 2000 of 2500 bytes used: 600 more would be too many, 500 fit.
    full = await upload(api, object_id, "three.png", png(600, 3), "image/png")
    assert (full.status_code, full.json()["message"]) == (
        413,
        "The file 'three.png' would take the ticket's attachments over their limit of 2500 bytes in all",
    )
    fits = await upload(api, object_id, "four.png", png(500, 4), "image/png")
    assert fits.status_code == 201
    # A deleted file no longer counts.
    deleted = await client.delete(first.json()["url"], headers=api.headers)
    assert deleted.status_code == 204
    assert (await upload(api, object_id, "five.png", png(600, 5), "image/png")).status_code == 201
    # Another ticket has its own total.
    other = await new_request(api)
    assert (await upload(api, other, "six.png", png(1000, 6), "image/png")).status_code == 201

    text = await upload(api, object_id, "notes.txt", b"words\n", "text/plain")
    assert (text.status_code, text.json()["message"]) == (
        400,
        "The file 'notes.txt' was refused: files of type text/plain are not accepted",
    )
    assert sorted(a["filename"] for a in await listed(api, object_id)) == ["five.png", "four.png", "two.png"]
    assert len(blobs_of(workspace, tenant)) == 4

    # A body declared larger than the limit per file and the form around it is refused before it is read, and so is
    # one that turns out larger while it streams (no Content-Length).
    declared = await client.post(
        f"{TICKETS}/{object_id}/attachments",
        headers={**api.headers, "content-type": FORM_CONTENT_TYPE},
        content=form("huge.png", png(200_000), "image/png"),
    )
    assert declared.status_code == 413
    assert declared.json()["code"] == "PAYLOAD_TOO_LARGE"

    async def chunked() -> AsyncIterator[bytes]:
        yield form_part_head("chunked.png", "image/png")
        yield png(1500)
        yield FORM_END

    streamed = await client.post(
        f"{TICKETS}/{object_id}/attachments",
        headers={**api.headers, "content-type": FORM_CONTENT_TYPE},
        content=chunked(),
    )
    assert (streamed.status_code, streamed.json()["message"]) == (
        413,
        "The file 'chunked.png' is larger than the limit of 1000 bytes per file",
    )
    assert len(blobs_of(workspace, tenant)) == 4
    assert partial_files(workspace) == []


async def test_a_ticket_holds_at_most_a_thousand_files_and_embeds_at_most_a_hundred(agent: TenantApi) -> None:
    object_id = await new_request(agent)
    files = [inline(f"{number}.txt", b"hi\n", "text/plain") for number in range(20)]
    for batch in range(50):
        response = await agent.comment(object_id, {"content": f"Batch {batch}", "attachments": files})
        assert response.status_code == 201, response.text
    assert len(await listed(agent, object_id)) == 1000
    over = await upload(agent, object_id, "one-more.txt", b"hi\n", "text/plain")
    assert (over.status_code, over.json()) == (
        413,
        {
            "error": True,
            "code": "PAYLOAD_TOO_LARGE",
            "message": "The file 'one-more.txt' would take the ticket over its limit of 1000 files",
            "status": 413,
        },
    )
    assert len(await listed(agent, object_id)) == 1000
    embedded = await agent.http.get(f"{TICKETS}/{object_id}", params={"include": "attachments"}, headers=agent.headers)
    reason = f"the ticket has more than 100 attachments: read them with GET .../ticket/{object_id}/attachments"
    assert (embedded.status_code, embedded.json()) == (400, invalid("Too many to embed", {"include": reason}))


async def test_an_upload_larger_than_the_json_limit_is_refused_at_the_edge_by_the_tenants_file_limit(
    agent: TenantApi, client: httpx.AsyncClient
) -> None:
    """The default limit per file is 10 MiB: an upload route admits a body up to that (plus the form), no more."""
    object_id = await new_request(agent)
    too_large = await client.post(
        f"{TICKETS}/{object_id}/attachments",
        headers={**agent.headers, "content-type": FORM_CONTENT_TYPE},
        content=form("eleven.png", png(11 * MIB), "image/png"),
    )
    assert too_large.status_code == 413
    assert too_large.json()["message"] == f"Request body is larger than the limit of {10 * MIB + 64 * 1024} bytes"
    fits = await upload(agent, object_id, "three.png", png(3 * MIB), "image/png")
    assert fits.status_code == 201, fits.text


# ---------------------------------------------------------------------------------------------------------------
# downloads


async def test_a_download_carries_its_type_name_validator_and_no_sniffing(agent: TenantApi) -> None:
    object_id = await new_request(agent)
    content = b"line one\nline two\n"
    created = (await upload(agent, object_id, "Résumé final (v2).txt", content, "text/plain")).json()

    response = await agent.http.get(created["url"], headers=agent.headers)

    assert response.status_code == 200
    assert response.content == content
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"R_sum_ final (v2).txt\"; filename*=UTF-8''R%C3%A9sum%C3%A9%20final%20%28v2%29.txt"
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["etag"] == f'"{sha256(content)}"'
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-length"] == str(len(content))
    assert response.headers["cache-control"] == "private, no-cache"

    unchanged = await agent.http.get(created["url"], headers={**agent.headers, "if-none-match": f'"{sha256(content)}"'})
    assert (unchanged.status_code, unchanged.content) == (304, b"")
    assert unchanged.headers["etag"] == f'"{sha256(content)}"'
    other = await agent.http.get(created["url"], headers={**agent.headers, "if-none-match": '"something-else"'})
    assert other.status_code == 200


@pytest.mark.parametrize(
    ("header", "status", "content_range", "part"),
    [
        ("bytes=0-9", 206, "bytes 0-9/100", slice(0, 10)),
        ("bytes=90-", 206, "bytes 90-99/100", slice(90, 100)),
        ("bytes=-5", 206, "bytes 95-99/100", slice(95, 100)),
        ("bytes=-500", 206, "bytes 0-99/100", slice(0, 100)),
        ("bytes=50-5000", 206, "bytes 50-99/100", slice(50, 100)),
        ("bytes=99-99", 206, "bytes 99-99/100", slice(99, 100)),
        ("bytes=0-1,5-6", 200, None, slice(0, 100)),
        ("bytes=9-3", 200, None, slice(0, 100)),
        ("items=0-9", 200, None, slice(0, 100)),
        ("bytes=abc", 200, None, slice(0, 100)),
    ],
)
async def test_range_requests(
    agent: TenantApi, header: str, status: int, content_range: str | None, part: slice
) -> None:
    object_id = await new_request(agent)
    content = bytes(range(32, 127)) + b"vwxyz"  # 100 bytes of text
    created = (await upload(agent, object_id, "blob.csv", content, "text/csv")).json()

    response = await agent.http.get(created["url"], headers={**agent.headers, "range": header})

    assert response.status_code == status
    assert response.content == content[part]
    assert response.headers.get("content-range") == content_range
    assert response.headers["content-length"] == str(len(content[part]))


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0"])
async def test_an_unsatisfiable_range_is_416_with_the_size(agent: TenantApi, header: str) -> None:
    object_id = await new_request(agent)
    created = (await upload(agent, object_id, "a.txt", b"x" * 100, "text/plain")).json()
    response = await agent.http.get(created["url"], headers={**agent.headers, "range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */100"
    assert response.json() == {
        "error": True,
        "code": "RANGE_NOT_SATISFIABLE",
        "message": "The requested range is not within the file's 100 bytes",
        "status": 416,
    }


async def test_if_range_serves_the_range_only_for_the_current_etag(agent: TenantApi) -> None:
    object_id = await new_request(agent)
    content = b"0123456789" * 10
    created = (await upload(agent, object_id, "digits.txt", content, "text/plain")).json()
    current = await agent.http.get(
        created["url"], headers={**agent.headers, "range": "bytes=0-3", "if-range": f'"{sha256(content)}"'}
    )
    assert (current.status_code, current.content) == (206, b"0123")
    stale = await agent.http.get(created["url"], headers={**agent.headers, "range": "bytes=0-3", "if-range": '"old"'})
    assert (stale.status_code, stale.content) == (200, content)


# ---------------------------------------------------------------------------------------------------------------
# deletion and history


async def test_adding_and_deleting_a_file_are_ticket_events_that_leave_the_etag_alone(
    agent: TenantApi, alpha: TenantSpec, workspace: Path, migrated: str
) -> None:
    object_id = await new_request(agent)
    etag = (await agent.get(object_id)).json()["etag"]
    created = (await upload(agent, object_id, "photo.png", png(500), "image/png")).json()
    assert created["author"] == "agent-1"

    after_upload = await agent.get(object_id)
    assert after_upload.json()["etag"] == etag
    events = await history(agent, object_id)
    assert [(e["sequence"], e["event"], e.get("attachment_id")) for e in events] == [
        (1, "ticket.created", None),
        (2, "attachment.created", created["id"]),
    ]
    assert (events[1]["etag"], events[1]["changes"], events[1]["actor"]) == (etag, {}, "agent-1")
    assert after_upload.json()["updated_at"] == events[1]["at"]

    deleted = await agent.http.delete(created["url"], headers=agent.headers)
    assert (deleted.status_code, deleted.content) == (204, b"")
    events = await history(agent, object_id)
    assert [(e["sequence"], e["event"], e.get("attachment_id")) for e in events][2:] == [
        (3, "attachment.deleted", created["id"])
    ]
    assert await listed(agent, object_id) == []
    assert blobs_of(workspace, alpha) == {}
    # The row stays, marked, for the history.
    assert [(str(r["id"]), r["deleted_at"] is not None) for r in await attachment_rows(migrated, alpha)] == [
        (created["id"], True)
    ]
    for response in (
        await agent.http.get(created["url"], headers=agent.headers),
        await agent.http.delete(created["url"], headers=agent.headers),
    ):
        assert (response.status_code, response.json()) == (404, attachment_not_found(created["id"]))

    # Neither event made the etag stale: an update with the etag read before both succeeds.
    counter = field_ids(await agent.ticket_type("REQ"))["counter"]
    updated = await agent.update(object_id, {"etag": etag, "ticketUpdate": {counter: 1}})
    assert updated.status_code == 200, updated.text
    as_of = await agent.http.get(f"{TICKETS}/{object_id}", headers=agent.headers, params={"asOfEtag": etag})
    assert as_of.status_code == 200
    assert as_of.json()["updated_at"] == events[2]["at"]


# ---------------------------------------------------------------------------------------------------------------
# who may see what


async def test_a_customer_reaches_the_files_of_its_own_tickets_only(
    client: httpx.AsyncClient, tenant_factory: TenantFactory
) -> None:
    tenant = await tenant_factory.fresh("custom", roles={**ALPHA_ROLES, "customer": ["customer"]})
    agent = TenantApi.agent(client, tenant)
    customer = TenantApi(client, tenant, token(tenant, roles=["customer"], subject="customer-7"))
    # A ticket created by the customer's subject (by an agent token: creation is the people helper's part).
    own = await new_request(TenantApi.agent(client, tenant, subject="customer-7"), "mine")
    others = await new_request(agent, "not mine")
    agents_file = (await upload(agent, own, "agent.txt", b"from the agent\n", "text/plain")).json()
    hidden = (await upload(agent, others, "hidden.txt", b"secret\n", "text/plain")).json()

    mine = await upload(customer, own, "mine.txt", b"from the customer\n", "text/plain")
    assert mine.status_code == 201, mine.text
    assert mine.json()["author"] == "customer-7"
    assert [a["filename"] for a in await listed(customer, own)] == ["agent.txt", "mine.txt"]
    assert (await client.get(agents_file["url"], headers=customer.headers)).content == b"from the agent\n"
    # Not the agent's file, even on its own ticket.
    refused = await client.delete(agents_file["url"], headers=customer.headers)
    assert (refused.status_code, refused.json()["code"]) == (401, "USER_PERMISSION_FAILURE")
    assert (await client.delete(mine.json()["url"], headers=customer.headers)).status_code == 204

    # Another's ticket and its files do not exist for the customer.
    for response in (
        await upload(customer, others, "x.txt", b"x\n", "text/plain"),
        await client.get(f"{TICKETS}/{others}/attachments", headers=customer.headers),
    ):
        assert (response.status_code, response.json()) == (404, ticket_not_found(others))
    for response in (
        await client.get(hidden["url"], headers=customer.headers),
        await client.delete(hidden["url"], headers=customer.headers),
    ):
        assert (response.status_code, response.json()) == (404, attachment_not_found(hidden["id"]))
    assert [a["filename"] for a in await listed(agent, others)] == ["hidden.txt"]


async def test_another_tenants_attachment_is_not_found_by_any_route(
    client: httpx.AsyncClient, alpha: TenantSpec, beta: TenantSpec
) -> None:
    owner = TenantApi.agent(client, alpha)
    object_id = await new_request(owner)
    created = (await upload(owner, object_id, "a.txt", b"alpha only\n", "text/plain")).json()
    stranger = TenantApi(client, beta, token(beta, roles=["boss", "agent", "reader"], subject="agent-1"))

    for response in (
        await client.get(created["url"], headers=stranger.headers),
        await client.delete(created["url"], headers=stranger.headers),
    ):
        assert (response.status_code, response.json()) == (404, attachment_not_found(created["id"]))
    for response in (
        await client.get(f"{TICKETS}/{object_id}/attachments", headers=stranger.headers),
        await upload(stranger, object_id, "b.txt", b"beta\n", "text/plain"),
        await client.get(f"{TICKETS}/{object_id}", headers=stranger.headers, params={"include": "attachments"}),
    ):
        assert (response.status_code, response.json()) == (404, ticket_not_found(object_id))
    assert [a["id"] for a in await listed(owner, object_id)] == [created["id"]]


# ---------------------------------------------------------------------------------------------------------------
# bad input changes nothing


def _bad_bodies() -> dict[str, tuple[dict[str, str], bytes, dict[str, str]]]:
    """name -> (headers, body, validationResult.reason)."""
    form_required = "a multipart/form-data body with one part, named 'file'"
    multipart = {"content-type": FORM_CONTENT_TYPE}
    return {
        "json": (
            {"content-type": "application/json"},
            b'{"file": "x"}',
            {"content-type": f"must be multipart/form-data with a boundary: {form_required}"},
        ),
        "no boundary": (
            {"content-type": "multipart/form-data"},
            form("a.txt", b"x"),
            {"content-type": f"must be multipart/form-data with a boundary: {form_required}"},
        ),
        "another field": (multipart, form("a.txt", b"x", field="upload"), {"file": f"required: {form_required}"}),
        "two files": (
            multipart,
            form_part_head("a.txt", "text/plain") + b"one\n\r\n" + form("b.txt", b"two\n", "text/plain"),
            {"body": f"one file per request: {form_required}"},
        ),
        "truncated": (
            multipart,
            form_part_head("a.txt", "text/plain") + b"no end",
            {"body": f"Unexpected end of multipart stream (parser closed): {form_required}"},
        ),
        "not a form": (
            multipart,
            b"just some bytes",
            {"body": f"Unexpected end of multipart stream (parser closed): {form_required}"},
        ),
    }


@pytest.mark.parametrize("case", list(_bad_bodies()))
async def test_a_malformed_upload_is_400_and_changes_nothing(
    agent: TenantApi, alpha: TenantSpec, workspace: Path, case: str
) -> None:
    headers, body, reason = _bad_bodies()[case]
    object_id = await new_request(agent)
    before = await history(agent, object_id)
    response = await agent.http.post(
        f"{TICKETS}/{object_id}/attachments", headers={**agent.headers, **headers}, content=body
    )
    assert (response.status_code, response.json()) == (400, invalid("Invalid multipart/form-data body", reason))
    assert await listed(agent, object_id) == []
    assert await history(agent, object_id) == before
    assert blobs_of(workspace, alpha) == {}
    assert partial_files(workspace) == []


async def test_unknown_query_parameters_and_ids_are_refused(agent: TenantApi) -> None:
    object_id = await new_request(agent)
    unknown = await agent.http.get(f"{TICKETS}/{object_id}/attachments", headers=agent.headers, params={"page": "2"})
    assert unknown.status_code == 400
    not_an_id = await agent.http.get(f"{ATTACHMENTS}/not-a-uuid", headers=agent.headers)
    assert not_an_id.status_code == 404
    absent = str(uuid.uuid4())
    response = await agent.http.get(f"{ATTACHMENTS}/{absent}", headers=agent.headers)
    assert (response.status_code, response.json()) == (404, attachment_not_found(absent))


# ---------------------------------------------------------------------------------------------------------------
# inline files on create, and ?include=attachments


def inline(filename: str, content: bytes, mime_type: str | None = None) -> dict[str, Any]:
    file: dict[str, Any] = {"filename": filename, "content": base64.b64encode(content).decode()}
    if mime_type is not None:
        file["mime_type"] = mime_type
    return file


async def create_with(api: TenantApi, files: list[dict[str, Any]], **headers: str) -> httpx.Response:
    request_type = await api.ticket_type("REQ")
    body = {
        "ticketTypeId": request_type["id"],
        "data": {field_ids(request_type)["title"]: "inline"},
        "attachments": files,
    }
    return await api.http.post(TICKETS, params=CATALOG, headers={**api.headers, **headers}, json=body)


async def test_files_sent_inline_on_create_are_stored_with_the_ticket_and_embedded_on_request(
    agent: TenantApi, alpha: TenantSpec, workspace: Path
) -> None:
    log = b"2026-12-02 error: export failed\n"
    created = await create_with(agent, [inline("error_log.txt", log, "text/plain"), inline("shot.png", png(400))])
    assert created.status_code == 201, created.text
    object_id = created.json()["objectId"]

    events = await history(agent, object_id)
    assert [e["event"] for e in events] == ["ticket.created", "attachment.created", "attachment.created"]
    shown = await agent.http.get(f"{TICKETS}/{object_id}", headers=agent.headers, params={"include": "attachments"})
    assert shown.status_code == 200
    document = shown.json()
    plain = (await agent.get(object_id)).json()
    assert {key: value for key, value in document.items() if key != "attachments"} == plain
    assert [(a["filename"], a["size"], a["mime_type"], a["sha256"], a["author"]) for a in document["attachments"]] == [
        ("error_log.txt", len(log), "text/plain", sha256(log), "agent-1"),
        ("shot.png", 400, "image/png", sha256(png(400)), "agent-1"),
    ]
    assert [a["id"] for a in document["attachments"]] == [e["attachment_id"] for e in events[1:]]
    assert (await agent.http.get(document["attachments"][0]["url"], headers=agent.headers)).content == log
    assert len(blobs_of(workspace, alpha)) == 2

    # The embedding response has its own validator: a file added since makes the old one stale.
    tag = shown.headers["etag"]
    assert tag != f'"{plain["etag"]}"'
    include = {"include": "attachments"}
    cached = await agent.http.get(
        f"{TICKETS}/{object_id}", headers={**agent.headers, "if-none-match": tag}, params=include
    )
    assert cached.status_code == 304
    await upload(agent, object_id, "more.txt", b"more\n", "text/plain")
    fresh = await agent.http.get(
        f"{TICKETS}/{object_id}", headers={**agent.headers, "if-none-match": tag}, params=include
    )
    assert fresh.status_code == 200
    assert [a["filename"] for a in fresh.json()["attachments"]] == ["error_log.txt", "shot.png", "more.txt"]


@pytest.mark.parametrize(
    ("files", "status", "message"),
    [
        (
            [inline("ok.txt", b"fine\n"), inline("cat.png", HTML, "image/png")],
            400,
            "The file 'cat.png' was refused: declared image/png, but the content is text",
        ),
        ([inline("empty.txt", b"")], 400, "The request failed validation"),
        ([{"filename": "x.txt", "content": "not base64!"}], 400, "The request failed validation"),
        ([inline("big.txt", b"x" * (10 * MIB + 1))], 413, None),
    ],
    ids=["html as png", "empty", "not base64", "over the body limit"],
)
async def test_a_create_with_a_refused_inline_file_creates_nothing(
    agent: TenantApi, alpha: TenantSpec, workspace: Path, files: list[dict[str, Any]], status: int, message: str | None
) -> None:
    response = await create_with(agent, files)
    assert response.status_code == status, response.text
    if message is not None:
        assert response.json()["message"] == message
    listing = await agent.http.get(TICKETS, headers=agent.headers)
    assert listing.json()["pagination"]["total"] == 0
    assert blobs_of(workspace, alpha) == {}
    # The display ID was not used up.
    assert (await new_request(agent)) == "REQ-0001"


async def test_inline_files_count_against_the_tenants_limits(
    client: httpx.AsyncClient, tenant_factory: TenantFactory, workspace: Path
) -> None:
    tenant = await tenant_factory.fresh("inline", attachments={"max_file_bytes": 1000, "max_ticket_bytes": 1500})
    api = TenantApi.agent(client, tenant)
    too_large = await create_with(api, [inline("a.txt", b"a" * 1001)])
    assert (too_large.status_code, too_large.json()["message"]) == (
        413,
        "The file 'a.txt' is larger than the limit of 1000 bytes per file",
    )
    too_many = await create_with(api, [inline("a.txt", b"a" * 1000), inline("b.txt", b"b" * 501)])
    assert (too_many.status_code, too_many.json()["message"]) == (
        413,
        "The file 'b.txt' would take the ticket's attachments over their limit of 1500 bytes in all",
    )
    assert (await client.get(TICKETS, headers=api.headers)).json()["pagination"]["total"] == 0
    assert blobs_of(workspace, tenant) == {}


async def test_a_replayed_create_with_inline_files_stores_them_once(
    agent: TenantApi, alpha: TenantSpec, workspace: Path
) -> None:
    files = [inline("once.txt", b"only once\n", "text/plain")]
    first = await create_with(agent, files, **{"Idempotency-Key": "inline-1"})
    again = await create_with(agent, files, **{"Idempotency-Key": "inline-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert [a["filename"] for a in await listed(agent, first.json()["objectId"])] == ["once.txt"]
    assert len(blobs_of(workspace, alpha)) == 1


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (
            {"include": "attachments,bogus"},
            {"include": "unknown 'bogus'; a comma-separated list of: comments, attachments"},
        ),
        ({"include": "attachments,"}, {"include": "unknown ''; a comma-separated list of: comments, attachments"}),
        (
            {"include": "attachments", "asOfEtag": str(uuid.uuid4())},
            {"include": "cannot be combined with asOf or asOfEtag"},
        ),
    ],
)
async def test_include_names_what_it_does_not_know(
    agent: TenantApi, params: dict[str, str], reason: dict[str, str]
) -> None:
    object_id = await new_request(agent)
    response = await agent.http.get(f"{TICKETS}/{object_id}", headers=agent.headers, params=params)
    assert (response.status_code, response.json()) == (400, invalid("Invalid query parameters", reason))


# ---------------------------------------------------------------------------------------------------------------
# blobs whose rows are gone


@pytest.fixture
async def store(migrated: str, workspace: Path) -> AsyncIterator[AttachmentStore]:
    """The store the server uses (same database, same folder), driven directly, with no grace period."""
    db = Database(migrated, min_size=1, max_size=2)
    await db.open()
    try:
        yield AttachmentStore(
            db,
            AttachmentRepository(db),
            FileSystemBlobStore(blob_root(workspace)),
            lambda _: AttachmentLimits(),
            download_path=f"{ATTACHMENTS}/",
            orphan_grace=datetime.timedelta(0),
        )
    finally:
        await db.close()


async def test_the_sweep_removes_blobs_without_a_live_row_and_abandoned_partial_writes(
    agent: TenantApi, alpha: TenantSpec, workspace: Path, migrated: str, store: AttachmentStore
) -> None:
    object_id = await new_request(agent)
    kept = (await upload(agent, object_id, "kept.txt", b"kept\n", "text/plain")).json()
    lost = (await upload(agent, object_id, "lost.txt", b"lost\n", "text/plain")).json()
    # A deletion whose blob removal never happened (the process died between the two).
    connection = await asyncpg.connect(migrated)
    try:
        await connection.execute(
            "UPDATE attachment SET deleted_at = now() WHERE tenant_id = $1 AND id = $2", alpha.id, uuid.UUID(lost["id"])
        )
    finally:
        await connection.close()
    # A blob stored by an upload that died before its row was written, and a partial write of a crashed process.
    orphan = uuid.uuid4()
    await store.blobs.put(blob_key(alpha.id, orphan), _chunks(b"orphan"))
    partial = blob_root(workspace) / ".partial" / "crashed"
    partial.write_bytes(b"half")
    # Not ours: never touched.
    stranger = blob_root(workspace) / "README"
    stranger.write_text("not a blob")

    # Within the grace period nothing goes: an upload may still be writing its row.
    young = await store.sweep_orphans(now=datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1))
    assert young == 0
    assert set(blobs_of(workspace, alpha)) == {kept["id"], lost["id"], str(orphan)}

    removed = await store.sweep_orphans(now=datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1))

    assert removed >= 3  # the blobs above, and any other test's leftovers
    assert set(blobs_of(workspace, alpha)) == {kept["id"]}
    assert not partial.exists()
    assert stranger.read_text() == "not a blob"
    stranger.unlink()
    assert (await agent.http.get(kept["url"], headers=agent.headers)).content == b"kept\n"


async def test_removing_a_deleted_tickets_attachments_leaves_no_blob_and_can_be_repeated(
    agent: TenantApi, alpha: TenantSpec, workspace: Path, migrated: str, store: AttachmentStore
) -> None:
    object_id = await new_request(agent)
    other = await new_request(agent)
    for name in ("a.txt", "b.txt"):
        assert (await upload(agent, object_id, name, b"text\n", "text/plain")).status_code == 201
    survivor = (await upload(agent, other, "c.txt", b"other\n", "text/plain")).json()
    # The ticket's deletion (the people helper's DELETE route) commits first.
    connection = await asyncpg.connect(migrated)
    try:
        ticket_id = await connection.fetchval(
            "UPDATE ticket SET deleted_at = now() WHERE tenant_id = $1 AND object_id = $2 RETURNING id",
            alpha.id,
            object_id,
        )
    finally:
        await connection.close()

    assert await store.remove_for_ticket(alpha.id, ticket_id) == 2
    assert set(blobs_of(workspace, alpha)) == {survivor["id"]}
    assert [r["deleted_at"] is not None for r in await attachment_rows(migrated, alpha)] == [True, True, False]
    # Again (a retry after a failure): nothing left to remove, nothing fails.
    assert await store.remove_for_ticket(alpha.id, ticket_id) == 2
    assert set(blobs_of(workspace, alpha)) == {survivor["id"]}


async def _chunks(content: bytes) -> AsyncIterator[bytes]:
    yield content


# ---------------------------------------------------------------------------------------------------------------
# files with comments, deleted tickets, Idempotency-Key


async def test_a_comment_brings_its_files_and_they_commit_with_it(
    agent: TenantApi, alpha: TenantSpec, workspace: Path
) -> None:
    object_id = await new_request(agent)
    log = b"2026-12-02 error: export failed\n"
    response = await agent.comment(
        object_id, {"content": "See the log", "attachments": [inline("error_log.txt", log, "text/plain")]}
    )
    assert response.status_code == 201, response.text
    comment = response.json()
    [file] = comment["attachments"]
    assert (file["filename"], file["size"], file["mime_type"], file["sha256"], file["author"]) == (
        "error_log.txt",
        len(log),
        "text/plain",
        sha256(log),
        "agent-1",
    )
    assert (await agent.http.get(file["url"], headers=agent.headers)).content == log
    # The same file wherever it shows: by the comment, in the ticket's files, embedded, and in the history.
    assert (await agent.comments(object_id)).json()["data"][0]["attachments"] == [file]
    assert await listed(agent, object_id) == [file]
    embedded = await agent.http.get(
        f"{TICKETS}/{object_id}", headers=agent.headers, params={"include": "comments,attachments"}
    )
    assert (embedded.json()["comments"][0]["attachments"], embedded.json()["attachments"]) == ([file], [file])
    events = await history(agent, object_id)
    assert [(e["event"], e["comment"], e["attachment_id"]) for e in events] == [
        ("ticket.created", None, None),
        ("comment.created", {"id": comment["id"], "is_internal": False}, None),
        ("attachment.created", None, file["id"]),
    ]
    assert set(blobs_of(workspace, alpha)) == {file["id"]}


async def test_a_comment_with_a_refused_file_adds_nothing(agent: TenantApi, alpha: TenantSpec, workspace: Path) -> None:
    object_id = await new_request(agent)
    response = await agent.comment(
        object_id,
        {"content": "Look", "attachments": [inline("ok.txt", b"fine\n"), inline("cat.png", HTML, "image/png")]},
    )
    assert (response.status_code, response.json()["message"]) == (
        400,
        "The file 'cat.png' was refused: declared image/png, but the content is text",
    )
    assert (await agent.comments(object_id)).json()["data"] == []
    assert [e["event"] for e in await history(agent, object_id)] == ["ticket.created"]
    assert blobs_of(workspace, alpha) == {}


async def test_an_internal_notes_files_are_as_hidden_from_customers_as_the_note(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    agent = TenantApi.agent(client, alpha)
    customer = TenantApi.customer(client, alpha, subject="customer-9")
    created = await customer.create(
        (await customer.ticket_type("REQ"))["id"], {field_ids(await customer.ticket_type("REQ"))["title"]: "Mine"}
    )
    assert created.status_code == 201, created.text
    object_id = created.json()["objectId"]
    public = await agent.comment(object_id, {"content": "Public", "attachments": [inline("p.txt", b"public\n")]})
    note = await agent.comment(
        object_id, {"content": "Internal", "is_internal": True, "attachments": [inline("n.txt", b"internal\n")]}
    )
    assert (public.status_code, note.status_code) == (201, 201), (public.text, note.text)
    [public_file], [note_file] = public.json()["attachments"], note.json()["attachments"]

    assert [a["id"] for a in await listed(agent, object_id)] == [public_file["id"], note_file["id"]]
    assert [a["id"] for a in await listed(customer, object_id)] == [public_file["id"]]
    embedded = await client.get(f"{TICKETS}/{object_id}", headers=customer.headers, params={"include": "attachments"})
    assert [a["id"] for a in embedded.json()["attachments"]] == [public_file["id"]]
    assert (await client.get(public_file["url"], headers=customer.headers)).content == b"public\n"
    for response in (
        await client.get(note_file["url"], headers=customer.headers),
        await client.delete(note_file["url"], headers=customer.headers),
    ):
        assert (response.status_code, response.json()) == (404, attachment_not_found(note_file["id"]))
    seen = [(e["event"], e["attachment_id"]) for e in await history(customer, object_id)]
    assert seen == [("ticket.created", None), ("comment.created", None), ("attachment.created", public_file["id"])]
    # The agent deletes the note's file: that event is internal too.
    assert (await client.delete(note_file["url"], headers=agent.headers)).status_code == 204
    assert [(e["event"], e["attachment_id"]) for e in await history(customer, object_id)] == seen
    assert [e["event"] for e in await history(agent, object_id)][-1] == "attachment.deleted"


async def test_deleting_a_ticket_removes_its_files(
    client: httpx.AsyncClient, alpha: TenantSpec, workspace: Path, migrated: str
) -> None:
    agent = TenantApi.agent(client, alpha)
    object_id = await new_request(agent)
    kept = await new_request(agent, "kept")
    doomed_file = (await upload(agent, object_id, "a.txt", b"a\n", "text/plain")).json()
    commented = await agent.comment(object_id, {"content": "with a file", "attachments": [inline("b.txt", b"b\n")]})
    assert commented.status_code == 201, commented.text
    survivor = (await upload(agent, kept, "c.txt", b"c\n", "text/plain")).json()
    assert len(blobs_of(workspace, alpha)) == 3

    deleted = await TenantApi.admin(client, alpha).delete(object_id)
    assert deleted.status_code == 204, deleted.text
    assert set(blobs_of(workspace, alpha)) == {survivor["id"]}
    assert [row["deleted_at"] is not None for row in await attachment_rows(migrated, alpha)] == [True, True, False]
    response = await client.get(doomed_file["url"], headers=agent.headers)
    assert (response.status_code, response.json()) == (404, attachment_not_found(doomed_file["id"]))


async def test_an_upload_retried_with_its_idempotency_key_is_stored_once(
    agent: TenantApi, alpha: TenantSpec, workspace: Path
) -> None:
    object_id = await new_request(agent)
    first = await upload(agent, object_id, "once.txt", b"once\n", "text/plain", **{"idempotency-key": "up-1"})
    again = await upload(agent, object_id, "once.txt", b"once\n", "text/plain", **{"idempotency-key": "up-1"})
    assert (first.status_code, again.status_code) == (201, 201), (first.text, again.text)
    assert again.json() == first.json()
    assert ("idempotent-replayed" in first.headers, again.headers["idempotent-replayed"]) == (False, "true")
    assert [a["id"] for a in await listed(agent, object_id)] == [first.json()["id"]]
    assert set(blobs_of(workspace, alpha)) == {first.json()["id"]}
    # Another file under the same key: refused, and its blob is not kept.
    other = await upload(agent, object_id, "once.txt", b"different\n", "text/plain", **{"idempotency-key": "up-1"})
    assert (other.status_code, other.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert set(blobs_of(workspace, alpha)) == {first.json()["id"]}


async def test_a_delete_retried_with_its_idempotency_key_answers_204_again(agent: TenantApi) -> None:
    object_id = await new_request(agent)
    file = (await upload(agent, object_id, "gone.txt", b"gone\n", "text/plain")).json()
    key = {"idempotency-key": "del-1"}
    first = await agent.http.delete(file["url"], headers={**agent.headers, **key})
    again = await agent.http.delete(file["url"], headers={**agent.headers, **key})
    assert (first.status_code, again.status_code, again.headers["idempotent-replayed"]) == (204, 204, "true")
    unkeyed = await agent.http.delete(file["url"], headers=agent.headers)
    assert (unkeyed.status_code, unkeyed.json()) == (404, attachment_not_found(file["id"]))
    assert [e["event"] for e in await history(agent, object_id)] == [
        "ticket.created",
        "attachment.created",
        "attachment.deleted",
    ]


async def test_a_malformed_idempotency_key_is_refused_before_the_file_is_stored(
    agent: TenantApi, alpha: TenantSpec, workspace: Path
) -> None:
    object_id = await new_request(agent)
    response = await upload(agent, object_id, "a.txt", b"a\n", "text/plain", **{"idempotency-key": "k" * 256})
    assert (response.status_code, response.json()) == (
        400,
        invalid("Invalid request headers", {"Idempotency-Key": "1 to 255 printable ASCII characters"}),
    )
    assert await listed(agent, object_id) == []
    assert blobs_of(workspace, alpha) == {}
