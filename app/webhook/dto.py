"""Wire types of the webhook API, and the body every delivery carries."""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from app.ticket.dto import Pagination

# Seed 004's events, and the ticket events this service also records.
EventType = Literal[
    "ticket.created",
    "ticket.updated",
    "ticket.status_changed",
    "ticket.assigned",
    "ticket.deleted",
    "comment.created",
    "attachment.created",
    "attachment.deleted",
    "user.created",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]
# A subscription's `events`: a list of event types, or "all" (also those added later).
Events = list[EventType] | Literal["all"]
MAX_DESCRIPTION_LENGTH = 500
Description = Annotated[str, Meta(max_length=MAX_DESCRIPTION_LENGTH)]
WebhookUrl = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=2048,
        description="https (plain http only to a loopback receiver, where WEBHOOK_ALLOW_LOOPBACK allows it); the "
        "host must resolve only to public addresses",
    ),
]


class SubscriptionIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    url: WebhookUrl
    events: Events = "all"
    description: Description = ""
    active: bool = True


class SubscriptionUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A PUT: the members sent replace the subscription's; the others keep their values. `active: true` switches a
    subscription the service disabled back on."""

    url: WebhookUrl | UnsetType = UNSET
    events: Events | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    active: bool | UnsetType = UNSET


class SubscriptionOut(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    url: str
    events: Events
    description: str
    active: bool
    # Why the service switched it off (failing continuously), or null.
    disabled_reason: str | None
    # Since when its deliveries have failed without a success in between, or null.
    failing_since: datetime.datetime | None
    # Until when the secret before the last rotation still signs too, or null.
    previous_secret_valid_until: datetime.datetime | None
    # Declared in the tenant file: change it there.
    declared: bool
    created_at: datetime.datetime
    created_by: str
    updated_at: datetime.datetime
    updated_by: str


class SubscriptionWithSecret(SubscriptionOut, frozen=True, kw_only=True):
    """The answer of a create and a rotation: the only times the signing secret is shown."""

    secret: str


class SubscriptionList(msgspec.Struct, frozen=True):
    data: list[SubscriptionOut]


class DeliveryOut(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    # The `webhook-id` header: the event's stable id (the receiver's dedupe key), the same on every attempt.
    webhook_id: str
    event: str
    ticket_id: uuid.UUID | None
    sequence: int | None
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    last_status_code: int | None
    # Milliseconds from sending the request to the response (or the failure).
    last_latency_ms: int | None
    last_error: str | None
    # The first 1 KiB of the last response's body.
    last_response: str | None
    # While pending: when the next attempt is due (None while it waits behind an earlier delivery of its ticket).
    next_attempt_at: datetime.datetime | None
    # While pending: when retries stop and it is dead-lettered.
    expires_at: datetime.datetime | None
    created_at: datetime.datetime
    last_attempt_at: datetime.datetime | None
    delivered_at: datetime.datetime | None


class DeliveryPage(msgspec.Struct, frozen=True):
    data: list[DeliveryOut]
    pagination: Pagination


# A ticket event's number (a PostgreSQL integer). A JSON number that is a whole number (3 or 3.0: JSON Schema's
# integers, which generated clients may send either way), hence a float that is a multiple of 1.
Sequence = Annotated[float, Meta(ge=1, le=2**31 - 1, multiple_of=1)]


class ReplayRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Either one ticket's events from a sequence number (`ticket` and `from_sequence`, optionally `to_sequence`),
    or every event of the tenant from a time (`since`, optionally `until`)."""

    ticket: Annotated[str, Meta(min_length=1, max_length=64)] | UnsetType = UNSET
    from_sequence: Sequence | UnsetType = UNSET
    to_sequence: Sequence | UnsetType = UNSET
    since: datetime.datetime | UnsetType = UNSET
    until: datetime.datetime | UnsetType = UNSET


class ReplayOut(msgspec.Struct, frozen=True):
    # How many deliveries were queued, and their webhook-ids in the order they will be sent.
    queued: int
    webhook_ids: list[str]


# -- the body of a delivery (seed 004's shape)


class Actor(msgspec.Struct, frozen=True):
    """Who acted (seed 004's `updated_by`): the subject, and its name and email as the users directory has them
    (null for no user there: a service account, the system; or a subject found in more than one realm)."""

    id: str
    name: str | None = None
    email: str | None = None


class Change(msgspec.Struct, frozen=True):
    previous: Any
    current: Any


class WebhookComment(msgspec.Struct, frozen=True):
    id: uuid.UUID
    content: str
    is_internal: bool
    author: Actor


class WebhookAttachment(msgspec.Struct, frozen=True):
    id: uuid.UUID
    filename: str
    size: int
    mime_type: str
    sha256: str
    is_internal: bool  # came with an internal note
    author: Actor


class WebhookTicket(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    id: uuid.UUID
    object_id: str
    ticket_type_id: uuid.UUID
    # The event's number in the ticket's history: events of one ticket arrive in this order.
    sequence: int
    title: Any
    # Seed 004's status values (open, in_progress, resolved, closed) as /api/v1/tickets shows them, by the tenant's
    # [v1.platform.statuses]; a state it does not map shows its own name.
    status: Change
    # The tenant's state names, and the states' ids.
    state: Change
    state_id: Change
    assignee: Change
    updated_by: Actor
    # ticket.created and ticket.updated: field UUID -> {"previous", "current"} of each field the event set.
    changes: dict[str, Change] | UnsetType = UNSET
    changed_fields: list[str] | UnsetType = UNSET
    note: str | UnsetType = UNSET


class WebhookUser(msgspec.Struct, frozen=True):
    """The user of a user.created event, as the users directory shows it (GET /users/{id})."""

    id: uuid.UUID
    subject: str
    realm: str
    name: str | None
    email: str | None
    role: str
    status: str
    created_at: datetime.datetime
    # Who added it: an admin's subject, or the user itself on its first call through an identity provider.
    created_by: Actor


class WebhookData(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    ticket: WebhookTicket | UnsetType = UNSET
    user: WebhookUser | UnsetType = UNSET
    comment: WebhookComment | UnsetType = UNSET
    attachment: WebhookAttachment | UnsetType = UNSET
    # A test ping: which subscription asked for it.
    subscription_id: uuid.UUID | UnsetType = UNSET


class WebhookBody(msgspec.Struct, frozen=True):
    event: str
    timestamp: str
    data: WebhookData
