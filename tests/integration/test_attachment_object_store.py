"""The S3-compatible object store behind attachments, against a real S3-compatible HTTP server on loopback (moto's
S3, started here as a subprocess): all-or-nothing writes (single PUT and multipart), ranged reads, listing,
deletion, abandoned multipart uploads, and the whole service over HTTP with ATTACHMENT_STORAGE=s3."""

from __future__ import annotations

import datetime
import hashlib
import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError

from app.attachment.storage import PART_BYTES, BlobMissing, S3BlobStore, blob_key
from tests.support import PNG_HEAD, LiveServer, TenantApi, TenantFactory, field_ids, free_port, make_settings, upload

MIB = 1024 * 1024
START_TIMEOUT = 30.0
REGION = "us-east-1"
CREDENTIALS = {"access_key_id": "test-key", "secret_access_key": "test-secret"}
TENANT = "6a4b8d0e-1f2a-4b3c-8d4e-5f6a7b8c9d0e"


@pytest.fixture(scope="module")
def s3_endpoint(workspace: Path) -> Iterator[str]:
    """moto's S3 server on a free loopback port, for this module."""
    port = free_port()
    log = (workspace / f"moto-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"moto exited with {process.returncode}"
            try:
                if httpx.get(f"{endpoint}/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "moto's S3 server did not start"
            time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture
async def store(s3_endpoint: str) -> AsyncIterator[S3BlobStore]:
    """An open store on a new bucket, under a key prefix."""
    bucket = f"attachments-{random.randrange(10**9)}"
    blobs = S3BlobStore(bucket, endpoint_url=s3_endpoint, region=REGION, prefix="tickets/", **CREDENTIALS)
    await blobs.open()
    try:
        await blobs.client.create_bucket(Bucket=bucket)
        yield blobs
    finally:
        await blobs.close()


def key(number: int) -> str:
    return blob_key(uuid.UUID(TENANT), uuid.UUID(int=number))


async def chunks(data: bytes, size: int = 64 * 1024, fail_after: int | None = None) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        if fail_after is not None and start >= fail_after:
            raise ConnectionResetError("the client went away")
        yield data[start : start + size]


async def read(store: S3BlobStore, name: str, start: int, length: int) -> bytes:
    return b"".join([chunk async for chunk in await store.reader(name, start, length)])


async def unfinished_uploads(store: S3BlobStore) -> list[str]:
    listed = await store.client.list_multipart_uploads(Bucket=store.bucket)
    return [upload["Key"] for upload in listed.get("Uploads", [])]


async def test_small_and_large_files_go_in_whole_and_come_back_in_ranges(store: S3BlobStore) -> None:
    small = b"a small file\n"
    large = random.Random(5).randbytes(2 * PART_BYTES + 123_457)  # three parts

    await store.put(key(1), chunks(small))
    await store.put(key(2), chunks(large))

    assert await read(store, key(1), 0, len(small)) == small
    assert await read(store, key(1), 2, 5) == small[2:7]
    assert hashlib.sha256(await read(store, key(2), 0, len(large))).digest() == hashlib.sha256(large).digest()
    across = PART_BYTES - 10
    assert await read(store, key(2), across, 20) == large[across : across + 20]
    listed = {blob.key: blob.modified async for blob in store.blobs()}
    assert set(listed) == {key(1), key(2)}
    assert all(abs(datetime.datetime.now(datetime.UTC) - moment).total_seconds() < 300 for moment in listed.values())
    objects = await store.client.list_objects_v2(Bucket=store.bucket)
    assert sorted(item["Key"] for item in objects["Contents"]) == [f"tickets/{key(1)}", f"tickets/{key(2)}"]
    assert await unfinished_uploads(store) == []

    await store.delete(key(1))
    await store.delete(key(1))  # nothing there: nothing happens
    with pytest.raises(BlobMissing):
        await store.reader(key(1), 0, 1)
    assert [blob.key async for blob in store.blobs()] == [key(2)]


@pytest.mark.parametrize("fail_after", [64 * 1024, PART_BYTES + 64 * 1024], ids=["before a part", "after a part"])
async def test_a_write_that_fails_half_way_leaves_no_object_and_no_upload(store: S3BlobStore, fail_after: int) -> None:
    data = random.Random(6).randbytes(2 * PART_BYTES)

    with pytest.raises(ConnectionResetError):
        await store.put(key(3), chunks(data, fail_after=fail_after))

    with pytest.raises(ClientError) as missing:
        await store.client.head_object(Bucket=store.bucket, Key=f"tickets/{key(3)}")
    assert missing.value.response["Error"]["Code"] == "404"
    assert await unfinished_uploads(store) == []
    assert [blob async for blob in store.blobs()] == []


async def test_an_abandoned_multipart_upload_is_aborted_by_the_sweep(store: S3BlobStore) -> None:
    """What a process killed during an upload leaves behind (it never got to abort)."""
    name = f"tickets/{key(4)}"
    started = await store.client.create_multipart_upload(Bucket=store.bucket, Key=name)
    await store.client.upload_part(
        Bucket=store.bucket, Key=name, UploadId=started["UploadId"], PartNumber=1, Body=b"x" * PART_BYTES
    )
    assert await unfinished_uploads(store) == [name]

    discarded = await store.discard_incomplete(datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1))

    assert discarded == 1
    assert await unfinished_uploads(store) == []


async def test_the_service_keeps_attachments_in_the_object_store(
    s3_endpoint: str,
    migrated: str,
    workspace: Path,
    tenant_factory: TenantFactory,
    store: S3BlobStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The service takes credentials the standard way (here: the environment), never from its own settings.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["secret_access_key"])
    settings = make_settings(
        migrated,
        workspace,
        attachment_storage="s3",
        attachment_s3_bucket=store.bucket,
        attachment_s3_endpoint_url=s3_endpoint,
        attachment_s3_region=REGION,
        attachment_s3_prefix="service/",
    )
    content = PNG_HEAD + random.Random(8).randbytes(7 * MIB)  # over one part: a multipart upload
    async with LiveServer(settings) as live, httpx.AsyncClient(base_url=live.url, timeout=60) as client:
        tenant = await tenant_factory.fresh("objects")
        api = TenantApi.agent(client, tenant)
        request_type = await api.ticket_type("REQ")
        created = await api.create(request_type["id"], {field_ids(request_type)["title"]: "in the bucket"})
        object_id = created.json()["objectId"]

        uploaded = await upload(api, object_id, "large.png", content, "image/png")
        assert uploaded.status_code == 201, uploaded.text
        attachment = uploaded.json()
        assert attachment["sha256"] == hashlib.sha256(content).hexdigest()
        name = f"service/{tenant.id}/{attachment['id']}"
        stored = await store.client.head_object(Bucket=store.bucket, Key=name)
        assert stored["ContentLength"] == len(content)

        whole = await client.get(attachment["url"], headers=api.headers)
        assert hashlib.sha256(whole.content).hexdigest() == attachment["sha256"]
        part = await client.get(attachment["url"], headers={**api.headers, "range": "bytes=-1000"})
        assert (part.status_code, part.content) == (206, content[-1000:])

        deleted = await client.delete(attachment["url"], headers=api.headers)
        assert deleted.status_code == 204
        with pytest.raises(ClientError):
            await store.client.head_object(Bucket=store.bucket, Key=name)
        assert await unfinished_uploads(store) == []
