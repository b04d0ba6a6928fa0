"""Attachments of a ticket: upload (multipart/form-data, streamed), list, download (Range, ETag) and delete."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.exceptions import InternalServerException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, RequestBody, Schema
from litestar.params import FromPath, HeaderParameter
from litestar.response import Stream
from litestar.types import Scope

from app.attachment.dto import AttachmentList, AttachmentOut
from app.attachment.errors import UploadInterrupted
from app.attachment.multipart import FILE_FIELD
from app.attachment.service import MULTIPART_OVERHEAD, AttachmentService, Download, etag
from app.auth.principal import Principal
from app.auth.requirements import READ_SCOPE, WRITE_SCOPE, TenantScopedOperation, requires
from app.errors import ErrorBody, error_responses
from app.idempotency.http import IDEMPOTENCY_KEY_PARAMETER, IdempotencyKeyHeader, replayed_headers
from app.observability import current_request_id
from app.tenancy.registry import TenantRegistry

_read = requires("read", READ_SCOPE, "read attachments", customers=True)
_delete = requires("write", WRITE_SCOPE, "delete attachments", documented=(IDEMPOTENCY_KEY_PARAMETER,), customers=True)
_upload = requires("write", WRITE_SCOPE, "upload attachments", documented=(IDEMPOTENCY_KEY_PARAMETER,), customers=True)

UPLOAD_BODY = RequestBody(
    required=True,
    description=f"One part, named {FILE_FIELD!r}: the file. Its filename is reduced to a safe name; its Content-Type, "
    "if any, must agree with the content, from which the stored type is read.",
    content={
        "multipart/form-data": OpenAPIMediaType(
            schema=Schema(
                type=OpenAPIType.OBJECT,
                properties={FILE_FIELD: Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY, min_length=1)},
                required=[FILE_FIELD],
                additional_properties=False,
            )
        )
    },
)


def _with_upload_body(operation: type[TenantScopedOperation]) -> type[TenantScopedOperation]:
    """The upload's operation documents its multipart body: the handler reads the body as a stream, so Litestar
    has no parameter to document it from."""

    @dataclass
    class UploadOperation(operation):  # type: ignore[valid-type,misc]
        def __post_init__(self) -> None:
            super().__post_init__()
            self.request_body = UPLOAD_BODY

    return UploadOperation


_upload["operation_class"] = _with_upload_body(_upload["operation_class"])

_TOO_LARGE = ResponseSpec(
    ErrorBody,
    description="PAYLOAD_TOO_LARGE: the file is over the tenant's limit per file, or would take the ticket's "
    "attachments over their limit in all",
    generate_examples=False,
)
_BYTES = ResponseSpec(bytes, media_type="*/*", generate_examples=False, description="The file, with its stored type")


class TicketAttachmentController(Controller):
    path = "/ticket/{object_id:str}/attachments"
    tags = ("attachments",)

    @post(
        **_upload,
        operation_id="uploadAttachment",
        summary="Upload a file to a ticket",
        status_code=201,
        # The body is streamed and limited per tenant (see upload_body_limit and AttachmentService.upload).
        request_max_body_size=None,
        responses={
            201: ResponseSpec(AttachmentOut, description="The stored attachment; its download URL also in Location"),
            413: _TOO_LARGE,
            **error_responses(400, 401, 404, 422),
        },
    )
    async def upload_attachment(
        self,
        request: Request[Principal, Any, Any],
        attachment_service: NamedDependency[AttachmentService],
        object_id: FromPath[str],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[AttachmentOut]:
        """multipart/form-data with one part, `file`, streamed to storage (never held whole in memory): refused with
        400 naming the file when its content contradicts its declared type or its type is not one the tenant
        accepts, 413 when it is over the tenant's size limits. Agents with write access, and customers on their own
        tickets."""
        content_length = request.headers.get("content-length")
        created, replayed = await attachment_service.upload(
            request.user,
            object_id,
            request.headers.get("content-type"),
            int(content_length) if content_length is not None and content_length.isdigit() else None,
            _body(request),
            current_request_id(),
            idempotency_key,
        )
        return Response(created, status_code=201, headers={"Location": created.url, **replayed_headers(replayed)})

    @get(
        **_read,
        operation_id="listAttachments",
        summary="A ticket's attachments, oldest first",
        responses=error_responses(400, 401, 404),
    )
    async def list_attachments(
        self,
        request: Request[Principal, Any, Any],
        attachment_service: NamedDependency[AttachmentService],
        object_id: FromPath[str],
    ) -> AttachmentList:
        """Every attachment of the ticket (deleted ones are gone), each with its download URL."""
        return AttachmentList(data=await attachment_service.list(request.user, object_id))


class AttachmentController(Controller):
    path = "/attachments"
    tags = ("attachments",)

    @get(
        "/{attachment_id:uuid}",
        **_read,
        operation_id="downloadAttachment",
        summary="Download an attachment",
        responses={
            200: _BYTES,
            206: ResponseSpec(
                bytes, media_type="*/*", generate_examples=False, description="The range asked for (Content-Range)"
            ),
            304: ResponseSpec(None, description="If-None-Match named the attachment's ETag"),
            416: ResponseSpec(
                ErrorBody,
                description="RANGE_NOT_SATISFIABLE: the range starts beyond the end (Content-Range: bytes */size)",
                generate_examples=False,
            ),
            **error_responses(400, 401, 404),
        },
    )
    async def download_attachment(
        self,
        request: Request[Principal, Any, Any],
        attachment_service: NamedDependency[AttachmentService],
        attachment_id: FromPath[uuid.UUID],
        byte_range: Annotated[
            str | None,
            HeaderParameter(name="Range", description="One byte range: bytes=first-last, bytes=first- or bytes=-n"),
        ] = None,
        if_range: Annotated[
            str | None, HeaderParameter(name="If-Range", description="The ETag the Range is for")
        ] = None,
        if_none_match: Annotated[str | None, HeaderParameter(name="If-None-Match")] = None,
    ) -> Stream:
        """The file, as stored, with its type, `Content-Disposition: attachment`, `X-Content-Type-Options: nosniff`
        and its SHA-256 as ETag, streamed from storage; one byte range with `Range` (206), 304 for If-None-Match."""
        download = await attachment_service.download(request.user, attachment_id, byte_range, if_range, if_none_match)
        return _stream(download)

    @delete(
        "/{attachment_id:uuid}",
        **_delete,
        operation_id="deleteAttachment",
        summary="Delete an attachment",
        status_code=204,
        responses={
            204: ResponseSpec(None, description="Deleted (or, with Idempotent-Replayed: true, deleted before)"),
            **error_responses(400, 401, 404, 422),
        },
    )
    async def delete_attachment(
        self,
        request: Request[Principal, Any, Any],
        attachment_service: NamedDependency[AttachmentService],
        attachment_id: FromPath[uuid.UUID],
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[None]:
        """Gone from the ticket (its history records attachment.deleted) and from storage. Agents with write access;
        customers only the files they uploaded to their own tickets."""
        _, replayed = await attachment_service.delete(
            request.user, attachment_id, current_request_id(), idempotency_key
        )
        return Response(None, status_code=204, headers=replayed_headers(replayed))


async def _body(request: Request[Principal, Any, Any]) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            yield chunk
    except InternalServerException:  # Litestar's word for a client that disconnected mid-body
        raise UploadInterrupted() from None


def _stream(download: Download) -> Stream:
    row = download.attachment
    headers = {
        "ETag": etag(row),
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
        "X-Content-Type-Options": "nosniff",
        # Should a browser open it anyway, it runs nothing and loads nothing.
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    if download.chunks is None:
        return Stream(_nothing(), status_code=304, headers=headers)
    headers["Content-Disposition"] = content_disposition(row.filename)
    headers["Content-Length"] = str(download.length)
    if download.status == 206:
        last = download.start + download.length - 1
        headers["Content-Range"] = f"bytes {download.start}-{last}/{row.size}"
    return Stream(download.chunks, status_code=download.status, media_type=row.mime_type, headers=headers)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""


_UNQUOTABLE = re.compile(r'[^\x20-\x7e]|["\\%]')


def content_disposition(filename: str) -> str:
    """`attachment`, with the name for every client: RFC 6266's UTF-8 `filename*`, and an ASCII `filename` for
    those that know only that."""
    fallback = _UNQUOTABLE.sub("_", filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def upload_body_limit(api_prefix: str, registry: TenantRegistry) -> Callable[[Scope], int | None]:
    """For BodySizeLimitMiddleware: the largest body an upload may declare (the tenant's limit per file, plus the
    form around it), for a POST to an upload route of an enabled tenant; None for every other request, which keeps
    the JSON body limit."""
    upload_path = re.compile(re.escape(api_prefix) + r"/ticket/[^/]+/attachments")

    def limit(scope: Scope) -> int | None:
        if scope.get("method") != "POST" or upload_path.fullmatch(scope["path"]) is None:
            return None
        header = next((value for name, value in scope["headers"] if name == b"x-tenantid"), None)
        try:
            tenant = registry.tenant(uuid.UUID(header.decode("latin-1"))) if header is not None else None
        except ValueError:
            return None
        if tenant is None or not tenant.enabled:
            return None
        return tenant.config.attachments.max_file_bytes + MULTIPART_OVERHEAD

    return limit
