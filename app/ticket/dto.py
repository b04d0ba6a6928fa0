"""Wire types of the ticket API. Names follow the contract (seed 002): `ticketUpdate`, `objectId` in write
responses, `object_id` and `lastUpdatedBy` in reads; everything else is snake_case like `object_id`."""

from __future__ import annotations

import datetime
import uuid
from typing import Any, Literal

import msgspec

CatalogType = Literal["template", "agent", "user"]


class CreateTicketRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ticketTypeId: uuid.UUID
    data: dict[str, Any] = {}


class UpdateTicketRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Optional here so that a missing etag or map is reported in the contract's INPUT_VALIDATION_FAILURE shape.
    etag: str | None = None
    ticketUpdate: dict[str, Any] | None = None


class UpdateTicketResponse(msgspec.Struct, frozen=True):
    success: bool
    message: str
    status: int
    etag: str


class CreateTicketResponse(msgspec.Struct, frozen=True):
    success: bool
    message: str
    status: int
    objectId: str
    id: uuid.UUID
    etag: str


class TicketOut(msgspec.Struct, frozen=True):
    etag: str
    id: uuid.UUID
    object_id: str
    ticket_type_id: uuid.UUID
    ticket_type_version: int
    state_id: uuid.UUID | None
    # Served as stored: the JSONB text is passed through as msgspec.Raw, never decoded and re-encoded.
    data: dict[str, Any]
    created_at: datetime.datetime
    created_by: str
    updated_at: datetime.datetime
    updated_by: str
    lastUpdatedBy: str


class Pagination(msgspec.Struct, frozen=True):
    total: int
    per_page: int
    current_page: int
    last_page: int
    next_page_url: str | None
    prev_page_url: str | None


class TicketPage(msgspec.Struct, frozen=True):
    data: list[TicketOut]
    pagination: Pagination


create_response_encoder = msgspec.json.Encoder()
create_response_decoder = msgspec.json.Decoder(CreateTicketResponse)
# Canonical form of a create request, so an Idempotency-Key replay compares meaning, not whitespace.
canonical_encoder = msgspec.json.Encoder(order="sorted")
