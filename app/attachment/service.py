"""Rules for attachments: who may add, read and delete them, the tenant's limits, and keeping rows and blobs in step.

A blob is stored (all or nothing, see storage.py) before its row is written, and removed after its row is marked
deleted. So a row always has its blob, and the only thing a failure can leave is a blob without a live row:
- a request that fails after storing its blob removes the blob at once, if no row was committed for it (when the
  database cannot say, because it is away, the blob is left to the sweep);
- a deletion removes the blob right after the row's deletion committed; if that removal fails, or the process dies
  first, the sweep does it;
- `remove_for_ticket` (after a ticket's deletion commits) marks the ticket's attachments deleted and removes their
  blobs; calling it again removes whatever an earlier call left;
- the sweep (`sweep_orphans`, every ATTACHMENT_SWEEP_INTERVAL_SECONDS in each worker) lists the store and removes
  every blob older than ATTACHMENT_ORPHAN_GRACE_SECONDS whose attachment is not live (no row, a deleted row, or a
  deleted ticket), and every partial write older than that. The grace period keeps it off uploads under way.
A blob is only ever served after its live row was read, so a blob whose row is gone is never served.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import msgspec

from app.attachment.content import CheckedFile, Inspection, safe_filename
from app.attachment.dto import AttachmentOut
from app.attachment.errors import (
    AttachmentNotFound,
    FileRefused,
    FileTooLarge,
    RangeNotSatisfiable,
    TicketAttachmentsFull,
    TicketFilesFull,
)
from app.attachment.multipart import MultipartFile, boundary_of
from app.attachment.repository import AttachmentRepository, AttachmentRow, NewAttachment
from app.attachment.storage import BlobMissing, BlobStore, StoredBlob, blob_key, parse_blob_key
from app.auth.principal import Principal
from app.db.database import Database
from app.errors import PermissionDenied
from app.idempotency.service import Idempotency, Outcome, check_key
from app.tenancy.model import AttachmentLimits
from app.ticket.dto import InlineAttachment
from app.ticket.errors import TicketNotFound
from app.ticket.includes import MAX_EMBEDDED, too_many_to_embed
from app.ticket.repository import TicketRow
from app.ticket.service import TicketService

log = logging.getLogger("app.attachment")
_attachments_encoder = msgspec.json.Encoder()
_attachment_decoder = msgspec.json.Decoder(AttachmentOut)
_blob_key_decoder = msgspec.json.Decoder(str)

# The parts of a one-file multipart body around the file: boundaries and the part's headers (at most 8 lines of
# 4 KiB each, see multipart.py), and a preamble or epilogue a client may add.
MULTIPART_OVERHEAD = 64 * 1024
# However small its files, a ticket has at most this many (its file list is one unpaginated answer).
MAX_FILES_PER_TICKET = 1000
# Blobs the sweep asks the database about at once.
SWEEP_BATCH = 500
INLINE_FIELD = "attachments"
UPLOAD_FIELD = "file"

Limits = Callable[[uuid.UUID], AttachmentLimits]
# Records staged files against a ticket (and optionally a comment) in the caller's transaction.
RecordStaged = Callable[..., Awaitable[list[AttachmentOut]]]


@dataclass(frozen=True, slots=True)
class _Staged:
    id: uuid.UUID
    key: str
    file: CheckedFile


@dataclass(frozen=True, slots=True)
class Download:
    """What to send for a download: the attachment, the status (200, 206 or 304), the bytes' range and, unless 304,
    the bytes as they are read."""

    attachment: AttachmentRow
    status: int
    start: int
    length: int
    chunks: AsyncIterator[bytes] | None


class AttachmentStore:
    """Attachments as rows and blobs, kept in step (see the module's notes), with no say over who may see a ticket:
    the routes (AttachmentService), ticket creation with inline files (TicketService, through its TicketAttachments
    protocol) and comments with inline files (CommentService) all store through here."""

    def __init__(
        self,
        db: Database,
        repository: AttachmentRepository,
        blobs: BlobStore,
        limits: Limits,
        *,
        download_path: str,
        orphan_grace: datetime.timedelta,
    ) -> None:
        self._db = db
        self.repository = repository
        self.blobs = blobs
        self.limits = limits
        # Where a download is served, before the attachment's id (relative to the host, like pagination links).
        self._download_path = download_path
        self._orphan_grace = orphan_grace

    def out(self, row: AttachmentRow) -> AttachmentOut:
        return AttachmentOut(
            id=row.id,
            filename=row.filename,
            size=row.size,
            mime_type=row.mime_type,
            sha256=row.sha256,
            url=f"{self._download_path}{row.id}",
            created_at=row.created_at,
            author=row.author,
        )

    async def listed(self, principal: Principal, ticket_id: uuid.UUID) -> list[AttachmentOut]:
        """The ticket's files the caller may see (those of internal notes only for agent-level callers)."""
        rows = await self.repository.list_for_ticket(
            principal.tenant_id, ticket_id, internal=principal.sees_internal_notes
        )
        return [self.out(row) for row in rows]

    async def of_comments(
        self, tenant_id: uuid.UUID, ticket_id: uuid.UUID, comment_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, list[AttachmentOut]]:
        """The files that came with each of these comments (the caller may see the comments), oldest first."""
        files: dict[uuid.UUID, list[AttachmentOut]] = defaultdict(list)
        if comment_ids:
            for row in await self.repository.for_comments(tenant_id, ticket_id, comment_ids):
                assert row.comment_id is not None
                files[row.comment_id].append(self.out(row))
        return files

    @asynccontextmanager
    async def staged(
        self, principal: Principal, files: Sequence[InlineAttachment], request_id: str
    ) -> AsyncIterator[RecordStaged | None]:
        """Files sent inline (base64) in a JSON body: each is checked (400 or 413 naming it) and its blob stored
        before anything else; the value recorded is `record(ticket_id, comment_id=None, internal=False)`, which
        writes their rows and events in the caller's transaction, or None when there are no files. Enter this outside
        that transaction: when it is left, every blob without a committed row (the transaction failed, or never
        recorded them) is removed."""
        if not files:
            yield None
            return
        limits = self.limits(principal.tenant_id)
        checked = [self._decoded(index, file, limits) for index, file in enumerate(files)]
        staged: list[_Staged] = []
        try:
            for file, content in checked:
                attachment_id = uuid.uuid4()
                key = blob_key(principal.tenant_id, attachment_id)
                await self.blobs.put(key, _once(content))
                staged.append(_Staged(attachment_id, key, file))

            async def record(
                ticket_id: uuid.UUID, comment_id: uuid.UUID | None = None, internal: bool = False
            ) -> list[AttachmentOut]:
                rows = await self.record(principal, ticket_id, staged, request_id, comment_id, internal)
                return [self.out(row) for row in rows]

            yield record
        finally:
            await self.discard(principal.tenant_id, staged)

    def _decoded(self, index: int, file: InlineAttachment, limits: AttachmentLimits) -> tuple[CheckedFile, bytes]:
        member = f"{INLINE_FIELD}[{index}]"
        filename = safe_filename(file.filename)
        try:
            content = base64.b64decode(file.content, validate=True)
        except (binascii.Error, ValueError):
            raise FileRefused(filename, f"{member}.content", "not base64 (RFC 4648, padded)") from None
        inspection = Inspection(filename, file.mime_type, limits, member)
        inspection.feed(content)
        return inspection.finish(), content

    async def record(
        self,
        principal: Principal,
        ticket_id: uuid.UUID,
        files: Sequence[_Staged],
        request_id: str,
        comment_id: uuid.UUID | None = None,
        internal: bool = False,
    ) -> list[AttachmentRow]:
        """The rows of stored blobs, with their ticket's events, under the ticket's row lock: the per-ticket totals
        (bytes, and files) are checked against what is committed, however many uploads race."""
        tenant_id = principal.tenant_id
        limit = self.limits(tenant_id).max_ticket_bytes
        async with self._db.transaction():
            if not await self.repository.lock_ticket(tenant_id, ticket_id):
                raise TicketNotFound(str(ticket_id))
            count, used = await self.repository.usage(tenant_id, ticket_id)
            rows = []
            for staged in files:
                used += staged.file.size
                count += 1
                if used > limit:
                    raise TicketAttachmentsFull(staged.file.filename, limit)
                if count > MAX_FILES_PER_TICKET:
                    raise TicketFilesFull(staged.file.filename, MAX_FILES_PER_TICKET)
                new = NewAttachment(
                    id=staged.id,
                    ticket_id=ticket_id,
                    comment_id=comment_id,
                    filename=staged.file.filename,
                    size=staged.file.size,
                    mime_type=staged.file.mime_type,
                    sha256=staged.file.sha256,
                    storage_key=staged.key,
                    internal=internal,
                )
                rows.append(
                    await self.repository.insert(
                        tenant_id, new, principal.subject, request_id, principal.support_request
                    )
                )
        return rows

    async def discard(self, tenant_id: uuid.UUID, staged: Sequence[_Staged]) -> None:
        """Remove the blobs no row was committed for. Best effort: whatever cannot be removed now (the database
        cannot tell, the store fails) the sweep removes later."""
        if not staged:
            return
        try:
            owned = await self.repository.with_rows(tenant_id, [item.id for item in staged])
            for item in staged:
                if item.id not in owned:
                    await self.blobs.delete(item.key)
        except Exception as exc:
            log.warning("blobs left for the orphan sweep", extra={"tenant_id": str(tenant_id), "error": repr(exc)})

    async def remove_blob(self, tenant_id: uuid.UUID, key: str) -> None:
        """Remove a blob whose row is gone; a failure is left to the sweep."""
        try:
            await self.blobs.delete(key)
        except Exception as exc:
            log.warning("blob left for the orphan sweep", extra={"tenant_id": str(tenant_id), "error": repr(exc)})

    async def remove_for_ticket(self, tenant_id: uuid.UUID, ticket_id: uuid.UUID) -> int:
        """After a ticket's deletion has committed: mark its attachments deleted and remove their blobs; returns how
        many blobs it asked the store to remove. Never raises: the deletion has happened, and whatever fails here
        (the database or the store away) the sweep removes, as a deleted ticket's attachments are not live. Safe to
        call again."""
        try:
            keys = await self.repository.mark_ticket_deleted(tenant_id, ticket_id)
        except Exception as exc:
            log.warning("a deleted ticket's blobs left for the orphan sweep", extra={"error": repr(exc)})
            return 0
        for key in keys:
            await self.remove_blob(tenant_id, key)
        return len(keys)

    async def sweep_orphans(self, now: datetime.datetime | None = None) -> int:
        """Remove every blob older than the grace period whose attachment is not live, and every partial write older
        than that; returns how many."""
        older_than = (now or datetime.datetime.now(datetime.UTC)) - self._orphan_grace
        removed = await self.blobs.discard_incomplete(older_than)
        batch: list[StoredBlob] = []
        async for blob in self.blobs.blobs():
            if blob.modified < older_than:
                batch.append(blob)
            if len(batch) >= SWEEP_BATCH:
                removed += await self._remove_unowned(batch)
                batch = []
        return removed + await self._remove_unowned(batch)

    async def _remove_unowned(self, blobs: list[StoredBlob]) -> int:
        by_tenant: dict[uuid.UUID, dict[uuid.UUID, str]] = defaultdict(dict)
        for blob in blobs:
            ids = parse_blob_key(blob.key)
            if ids is not None:  # anything else in the store is not ours to remove
                by_tenant[ids[0]][ids[1]] = blob.key
        removed = 0
        for tenant_id, keys in by_tenant.items():
            live = await self.repository.live(tenant_id, list(keys))
            for attachment_id, key in keys.items():
                if attachment_id not in live:
                    await self.blobs.delete(key)
                    removed += 1
        return removed


class AttachmentService:
    """The attachment routes: a caller reaches an attachment only through a ticket it may see
    (TicketService.visible: a customer-level caller, its own tickets only)."""

    def __init__(self, store: AttachmentStore, tickets: TicketService, keys: Idempotency) -> None:
        self._store = store
        self._tickets = tickets
        self._keys = keys

    async def upload(
        self,
        principal: Principal,
        object_id: str,
        content_type: str | None,
        content_length: int | None,
        body: AsyncIterable[bytes],
        request_id: str,
        idempotency_key: str | None = None,
    ) -> Outcome[AttachmentOut]:
        """One file from a multipart/form-data body, streamed to the blob store: hashed, counted and typed as it
        passes, refused as soon as it breaks a limit (and then nothing is kept)."""
        check_key(idempotency_key)  # before the file is read, not after
        ticket = await self._tickets.visible(principal, object_id)
        tenant_id = principal.tenant_id
        limits = self._store.limits(tenant_id)
        boundary = boundary_of(content_type)
        most = limits.max_file_bytes + MULTIPART_OVERHEAD
        if content_length is not None and content_length > most:
            raise FileTooLarge(None, limits.max_file_bytes)
        form = MultipartFile(_capped(body, most, limits.max_file_bytes), boundary)
        part = await form.part()
        inspection = Inspection(safe_filename(part.filename), part.content_type, limits, UPLOAD_FIELD)
        attachment_id = uuid.uuid4()
        key = blob_key(tenant_id, attachment_id)
        checked: list[CheckedFile] = []

        async def inspected() -> AsyncIterator[bytes]:
            async for chunk in form.content():
                inspection.feed(chunk)
                yield chunk
            # Before the blob is committed: a second part, or a refused file, leaves nothing.
            await form.finish()
            checked.append(inspection.finish())

        await self._store.blobs.put(key, inspected())
        staged = [_Staged(attachment_id, key, checked[0])]

        async def write() -> AttachmentOut:
            [row] = await self._store.record(principal, ticket.id, staged, request_id)
            return self._store.out(row)

        # The key covers the file as received (its name and content), so a retry of the same upload replays the first
        # answer, and the blob this retry stored is removed.
        file = checked[0]
        try:
            claim = self._keys.claim(
                principal, idempotency_key, "upload_attachment", object_id, file.filename, file.mime_type, file.sha256
            )
            created, replayed = await self._keys.once(principal, claim, write, _attachment_decoder)
        except BaseException:
            await self._store.discard(tenant_id, staged)
            raise
        if replayed:
            await self._store.discard(tenant_id, staged)
        return created, replayed

    async def of_ticket(self, principal: Principal, ticket: TicketRow) -> list[AttachmentOut]:
        """The files of a ticket the caller may see (those of internal notes only for agent-level callers)."""
        return await self._store.listed(principal, ticket.id)

    async def list(self, principal: Principal, object_id: str) -> list[AttachmentOut]:
        return await self.of_ticket(principal, await self._tickets.visible(principal, object_id))

    async def embedded(self, principal: Principal, ticket: TicketRow) -> bytes:
        """The JSON of the ticket's files the caller may see, oldest first, to embed in the ticket
        (GET /ticket/{objectId}?include=attachments; the ticket is one the caller may see)."""
        files = await self._store.listed(principal, ticket.id)
        if len(files) > MAX_EMBEDDED:
            raise too_many_to_embed("attachments", ticket)
        return _attachments_encoder.encode(files)

    async def download(
        self,
        principal: Principal,
        attachment_id: uuid.UUID,
        range_header: str | None,
        if_range: str | None,
        if_none_match: str | None,
    ) -> Download:
        """The attachment's bytes: all (200), one range of them (206; RFC 9110 `Range: bytes=first-last`, `first-`
        or `-suffix`; 416 when the range starts beyond the end), or nothing (304) when If-None-Match names its
        ETag. A Range that is not one byte range, or whose If-Range names another version, is ignored (200)."""
        row = await self._visible(principal, attachment_id)
        tag = etag(row)
        if if_none_match is not None and _names(if_none_match, tag):
            return Download(row, 304, 0, 0, None)
        wanted = byte_range(range_header) if if_range is None or if_range.strip() == tag else None
        start, length, status = 0, row.size, 200
        if wanted is not None:
            start, length = resolve_range(wanted, row.size)
            status = 206
        try:
            chunks = await self._store.blobs.reader(row.storage_key, start, length)
        except BlobMissing:
            # Deleted since the row was read; any other missing blob is a fault.
            if await self._store.repository.get(principal.tenant_id, row.id, internal=True) is not None:
                raise RuntimeError(f"attachment {row.id} has no blob") from None
            raise AttachmentNotFound(str(attachment_id)) from None
        return Download(row, status, start, length, chunks)

    async def delete(
        self, principal: Principal, attachment_id: uuid.UUID, request_id: str, idempotency_key: str | None = None
    ) -> Outcome[None]:
        """Mark it deleted (with the ticket's attachment.deleted event), then remove its blob. A customer-level
        caller may delete only the files it uploaded itself. A retry with the same Idempotency-Key replays the 204."""

        async def write() -> str:
            row = await self._visible(principal, attachment_id)
            if principal.customer_only and row.author != principal.subject:
                raise PermissionDenied("You do not have the permission to delete this attachment")
            key = await self._store.repository.mark_deleted(
                principal.tenant_id, attachment_id, principal.subject, request_id, principal.support_request
            )
            if key is None:  # deleted meanwhile
                raise AttachmentNotFound(str(attachment_id))
            return key

        claim = self._keys.claim(principal, idempotency_key, "delete_attachment", attachment_id)
        key, replayed = await self._keys.once(principal, claim, write, _blob_key_decoder)
        if not replayed:
            # Only once the deletion has committed; a failure here is left to the sweep.
            await self._store.remove_blob(principal.tenant_id, key)
        return None, replayed

    async def _visible(self, principal: Principal, attachment_id: uuid.UUID) -> AttachmentRow:
        # An internal note's file is "not found" to a customer-level caller, like one that never existed.
        row = await self._store.repository.get(
            principal.tenant_id, attachment_id, internal=principal.sees_internal_notes
        )
        if row is None:
            raise AttachmentNotFound(str(attachment_id))
        try:
            await self._tickets.visible(principal, row.object_id)
        except TicketNotFound:
            raise AttachmentNotFound(str(attachment_id)) from None
        return row


def etag(row: AttachmentRow) -> str:
    """A download's strong validator: the content's SHA-256 (an attachment's bytes never change)."""
    return f'"{row.sha256}"'


def _names(if_none_match: str, tag: str) -> bool:
    candidates = {candidate.strip().removeprefix("W/") for candidate in if_none_match.split(",")}
    return "*" in candidates or tag in candidates


# (first, last): bytes=first-last, bytes=first- (last None), or bytes=-suffix (first None, last = the suffix length).
ByteRange = tuple[int | None, int | None]
_MAX_RANGE_DIGITS = 19


def byte_range(header: str | None) -> ByteRange | None:
    """One byte range from a Range header, or None to ignore it (absent, another unit, several ranges, invalid)."""
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not all(part == "" or (part.isdigit() and len(part) <= _MAX_RANGE_DIGITS) for part in (first, last)):
        return None
    if first == "":
        return (None, int(last)) if last else None
    if last and int(last) < int(first):
        return None
    return int(first), int(last) if last else None


def resolve_range(wanted: ByteRange, size: int) -> tuple[int, int]:
    """(start, length) of a byte range in a file of `size` bytes; 416 when none of it is in the file."""
    first, last = wanted
    if first is None:
        assert last is not None
        if last == 0:
            raise RangeNotSatisfiable(size)
        length = min(last, size)
        return size - length, length
    if first >= size:
        raise RangeNotSatisfiable(size)
    end = size - 1 if last is None else min(last, size - 1)
    return first, end - first + 1


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content


async def _capped(body: AsyncIterable[bytes], most: int, max_file_bytes: int) -> AsyncIterator[bytes]:
    """The body, refused (413) once more than `most` bytes have arrived, whatever the Content-Length said."""
    received = 0
    async for chunk in body:
        received += len(chunk)
        if received > most:
            raise FileTooLarge(None, max_file_bytes)
        yield chunk
