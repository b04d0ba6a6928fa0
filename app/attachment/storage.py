"""Where attachment bytes live: one small interface, BlobStore, and its two implementations, chosen by configuration
(ATTACHMENT_STORAGE): files under the data directory (the default), or an S3-compatible object store.

Every write is all or nothing. A blob appears under its key only once every byte has arrived: the filesystem store
writes a partial file and renames it into place (after fsync); the object store uses a multipart upload that it
completes, or a single PUT for a file smaller than one part. A write that fails or is interrupted removes what it
wrote (the partial file, or the multipart upload is aborted); what a crashed process leaves behind (a partial file,
an unfinished multipart upload) is older than the grace period at the next sweep and `discard_incomplete` removes it.

Memory per write is bounded whatever the file's size: WRITE_BYTES for the filesystem, one part (PART_BYTES, S3's
minimum for all but the last part) for the object store.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable
from contextlib import AsyncExitStack, suppress
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

import aioboto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.config import Settings
from app.errors import RETRY_AFTER_SECONDS, ServiceUnavailable

log = logging.getLogger("app.attachment.storage")

MIB = 1024 * 1024
WRITE_BYTES = 256 * 1024
READ_BYTES = 64 * 1024
PART_BYTES = 5 * MIB
# Keys are "<tenant uuid>/<attachment uuid>" (see blob_key); nothing else is ever read or written.
_KEY = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
T = TypeVar("T")


def blob_key(tenant_id: uuid.UUID, attachment_id: uuid.UUID) -> str:
    """Tenant first, like every key in the database."""
    return f"{tenant_id}/{attachment_id}"


def parse_blob_key(key: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(tenant id, attachment id), or None for anything that is not an attachment's key."""
    if _KEY.fullmatch(key) is None:
        return None
    tenant, attachment = key.split("/")
    return uuid.UUID(tenant), uuid.UUID(attachment)


class StoredBlob(NamedTuple):
    key: str
    modified: datetime.datetime


class BlobMissing(Exception):
    """No blob under the key."""


class StorageUnavailable(ServiceUnavailable):
    """The blob store failed (unreachable, refusing, out of space): 503, retry later. The cause goes to the log."""

    def __init__(self) -> None:
        super().__init__(
            "The file storage is temporarily unavailable; retry later",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


class BlobStore(Protocol):
    async def open(self) -> None:
        """Acquire what the store needs (a client); called once at start-up."""

    async def close(self) -> None: ...

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        """Store the chunks under `key`, all or nothing: an exception from `chunks` (or the store) leaves no blob and
        nothing partial, and passes through."""

    async def reader(self, key: str, start: int, length: int) -> AsyncIterator[bytes]:
        """The bytes start..start+length-1 of the blob, as they are read; BlobMissing before anything is read."""

    async def delete(self, key: str) -> None:
        """Remove the blob; nothing happens if there is none."""

    def blobs(self) -> AsyncIterator[StoredBlob]:
        """Every blob, with when it was written."""

    async def discard_incomplete(self, older_than: datetime.datetime) -> int:
        """Remove the writes a crashed process left unfinished before `older_than`; returns how many."""


def open_store(settings: Settings) -> BlobStore:
    if settings.attachment_storage == "s3":
        assert settings.attachment_s3_bucket is not None  # load_settings requires it
        return S3BlobStore(
            settings.attachment_s3_bucket,
            endpoint_url=settings.attachment_s3_endpoint_url,
            region=settings.attachment_s3_region,
            prefix=settings.attachment_s3_prefix,
        )
    return FileSystemBlobStore(settings.data_dir / "attachments")


class FileSystemBlobStore:
    """Blobs as files under `root`: <tenant>/<attachment>, written first as .partial/<random> and renamed into place
    (one filesystem, so the rename is atomic), fsync'ed before and after the rename so a crash never leaves a blob
    that is shorter than its row says. File I/O runs in worker threads."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.partial = root / ".partial"

    async def open(self) -> None:
        await asyncio.to_thread(self.partial.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        return None

    def _path(self, key: str) -> Path:
        if _KEY.fullmatch(key) is None:
            raise ValueError(f"not a blob key: {key!r}")
        return self.root / key

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        final = self._path(key)
        partial = self.partial / uuid.uuid4().hex
        fd = await _storage_call(asyncio.to_thread(_create_exclusive, partial))
        try:
            buffer = bytearray()
            async for chunk in chunks:
                buffer += chunk
                if len(buffer) >= WRITE_BYTES:
                    await _storage_call(asyncio.to_thread(_write_all, fd, buffer))
                    buffer.clear()
            if buffer:
                await _storage_call(asyncio.to_thread(_write_all, fd, buffer))
            await _storage_call(asyncio.to_thread(_move_into_place, fd, partial, final))
        except BaseException:
            # Synchronous, so a cancellation cannot interrupt it: closing and unlinking one file is quick.
            _discard_partial(fd, partial)
            raise

    async def reader(self, key: str, start: int, length: int) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise BlobMissing(key) from None
        except OSError as exc:
            raise _unavailable(exc) from None

        async def chunks() -> AsyncIterator[bytes]:
            try:
                await asyncio.to_thread(handle.seek, start)
                left = length
                while left > 0:
                    chunk = await asyncio.to_thread(handle.read, min(READ_BYTES, left))
                    if not chunk:
                        raise RuntimeError(f"blob {key} is shorter than its attachment row says")
                    left -= len(chunk)
                    yield chunk
            finally:
                handle.close()

        return chunks()

    async def delete(self, key: str) -> None:
        try:
            await asyncio.to_thread(self._path(key).unlink, missing_ok=True)
        except OSError as exc:
            raise _unavailable(exc) from None

    async def blobs(self) -> AsyncIterator[StoredBlob]:
        for tenant in await asyncio.to_thread(_listing, self.root):
            if tenant.is_directory and not tenant.name.startswith("."):
                for entry in await asyncio.to_thread(_listing, self.root / tenant.name):
                    if not entry.is_directory:
                        yield StoredBlob(f"{tenant.name}/{entry.name}", entry.modified)

    async def discard_incomplete(self, older_than: datetime.datetime) -> int:
        discarded = 0
        for entry in await asyncio.to_thread(_listing, self.partial):
            if not entry.is_directory and entry.modified < older_than:
                await asyncio.to_thread((self.partial / entry.name).unlink, missing_ok=True)
                discarded += 1
        return discarded


def _create_exclusive(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)


def _write_all(fd: int, data: bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _move_into_place(fd: int, partial: Path, final: Path) -> None:
    os.fsync(fd)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, final)
    _fsync_directory(final.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard_partial(fd: int, partial: Path) -> None:
    with suppress(OSError):
        os.close(fd)
    partial.unlink(missing_ok=True)


class _Entry(NamedTuple):
    name: str
    is_directory: bool
    modified: datetime.datetime


def _listing(directory: Path) -> list[_Entry]:
    """The directory's files and folders (no symbolic links), with their modification times; none if it is gone."""
    entries = []
    try:
        with os.scandir(directory) as found:
            for entry in found:
                if entry.is_symlink():
                    continue
                try:
                    modified = entry.stat(follow_symlinks=False).st_mtime
                except FileNotFoundError:
                    continue
                moment = datetime.datetime.fromtimestamp(modified, datetime.UTC)
                entries.append(_Entry(entry.name, entry.is_dir(follow_symlinks=False), moment))
    except FileNotFoundError:
        pass
    return entries


class S3BlobStore:
    """Blobs as objects of one bucket, under `prefix`. Credentials come from the standard AWS chain (environment
    variables, shared files, instance roles) unless given. A file smaller than one part is one PUT; a larger one is
    a multipart upload, completed after its last part or aborted on any failure."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        prefix: str = "",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._endpoint_url = endpoint_url
        self._region = region
        self._session = aioboto3.Session(aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key)
        self._stack = AsyncExitStack()
        self._client: Any = None

    async def open(self) -> None:
        # Checksums only where S3 requires them: other S3-compatible servers do not all know the newer ones.
        config = Config(request_checksum_calculation="when_required", response_checksum_validation="when_required")
        self._client = await self._stack.enter_async_context(
            self._session.client("s3", endpoint_url=self._endpoint_url, region_name=self._region, config=config)
        )

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("the object store is not open")
        return self._client

    def _name(self, key: str) -> str:
        if _KEY.fullmatch(key) is None:
            raise ValueError(f"not a blob key: {key!r}")
        return self.prefix + key

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        name = self._name(key)
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        buffer = bytearray()
        try:
            async for chunk in chunks:
                buffer += chunk
                if len(buffer) >= PART_BYTES:
                    if upload_id is None:
                        created = await _storage_call(self.client.create_multipart_upload(Bucket=self.bucket, Key=name))
                        upload_id = created["UploadId"]
                    parts.append(await self._upload_part(name, upload_id, len(parts) + 1, buffer))
                    buffer = bytearray()
            if upload_id is None:
                await _storage_call(self.client.put_object(Bucket=self.bucket, Key=name, Body=bytes(buffer)))
                return
            if buffer:
                parts.append(await self._upload_part(name, upload_id, len(parts) + 1, buffer))
            await _storage_call(
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=name, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
            )
        except BaseException:
            if upload_id is not None:
                await self._abort(name, upload_id)
            raise

    async def _upload_part(self, name: str, upload_id: str, number: int, body: bytearray) -> dict[str, Any]:
        part = await _storage_call(
            self.client.upload_part(
                Bucket=self.bucket, Key=name, UploadId=upload_id, PartNumber=number, Body=bytes(body)
            )
        )
        return {"ETag": part["ETag"], "PartNumber": number}

    async def _abort(self, name: str, upload_id: str) -> None:
        """Best effort: an upload that cannot be aborted now is aborted by the sweep (discard_incomplete)."""
        try:
            await self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
        except (BotoCoreError, ClientError) as exc:
            log.warning("could not abort a multipart upload", extra={"key": name, "error": repr(exc)})

    async def reader(self, key: str, start: int, length: int) -> AsyncIterator[bytes]:
        try:
            response = await self.client.get_object(
                Bucket=self.bucket, Key=self._name(key), Range=f"bytes={start}-{start + length - 1}"
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise BlobMissing(key) from None
            raise _unavailable(exc) from None
        except BotoCoreError as exc:
            raise _unavailable(exc) from None
        body = response["Body"]

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while chunk := await body.read(READ_BYTES):
                    yield chunk
            finally:
                body.close()

        return chunks()

    async def delete(self, key: str) -> None:
        await _storage_call(self.client.delete_object(Bucket=self.bucket, Key=self._name(key)))

    async def blobs(self) -> AsyncIterator[StoredBlob]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        async for page in pages:
            for item in page.get("Contents", ()):
                yield StoredBlob(item["Key"][len(self.prefix) :], item["LastModified"])

    async def discard_incomplete(self, older_than: datetime.datetime) -> int:
        discarded = 0
        pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=self.prefix)
        async for page in pages:
            for upload in page.get("Uploads", ()):
                # Only uploads of attachment keys: a shared bucket may hold other applications' uploads.
                ours = parse_blob_key(upload["Key"][len(self.prefix) :]) is not None
                if ours and upload["Initiated"] < older_than:
                    await self._abort(upload["Key"], upload["UploadId"])
                    discarded += 1
        return discarded


async def _storage_call(call: Awaitable[T]) -> T:
    """A store operation, its failures as StorageUnavailable (logged)."""
    try:
        return await call
    except (OSError, BotoCoreError, ClientError) as exc:
        raise _unavailable(exc) from None


def _unavailable(exc: BaseException) -> StorageUnavailable:
    log.warning("file storage failed", extra={"error": f"{exc.__class__.__name__}: {exc}"})
    return StorageUnavailable()
