"""A tenant's configuration as stored in the database and held in memory. Unknown fields are ignored when
decoding, so a worker of the previous release keeps working while a newer one writes the rows (tenant files
themselves are checked strictly, against schemas/tenant.schema.json). Role lists are sorted tuples so the
stored form (and its hash) is the same in every process."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import msgspec


class RoleMapping(msgspec.Struct, frozen=True):
    read: tuple[str, ...]
    write: tuple[str, ...]
    admin: tuple[str, ...]
    support: str
    # Customer-level roles: their own tickets only, no internal notes.
    customer: tuple[str, ...] = ()
    # None: the defaults (comment: write and customer roles; delete: admin roles), resolved by the registry so a
    # change of the write or admin roles carries over.
    comment: tuple[str, ...] | None = None
    delete: tuple[str, ...] | None = None


class RealmConfig(msgspec.Struct, frozen=True):
    name: str
    issuer: str
    audience: str
    algorithms: tuple[str, ...]
    # Exactly one is set: an inline public JWKS (files, inline keys and generated dev keys resolve to this) or a URL.
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None
    # Set for development realms whose key pair lives in the data folder; `python -m app token` signs with it.
    dev_key_algorithm: str | None = None
    # "builtin": this service issues the realm's tokens (sign-in, client credentials), signing with the private key
    # whose public JWK has `signing_kid`: the file `private_key_file`, or else one of the realm's generated keys in
    # the data folder (app/tenancy/devkeys.py). `jwks` then publishes that key and, after a rotation, the previous one.
    kind: str = "external"
    signing_kid: str | None = None
    private_key_file: str | None = None

    @property
    def builtin(self) -> bool:
        return self.kind == "builtin"


class StateSeed(msgspec.Struct, frozen=True, kw_only=True):
    """A ticket state a tenant starts with; `next_state` names another seeded state."""

    name: str
    state_type: str
    next_state: str | None = None
    ignore_escalation: bool = False
    default_create: bool = False
    default_follow_up: bool = False
    note: str | None = None
    active: bool = True


MIB = 1024 * 1024
# The types a tenant accepts unless its file lists others: documents, images and plain text, nothing a browser would
# run (no HTML, SVG or scripts; the type is read from the content, see app/attachment/content.py).
DEFAULT_ALLOWED_TYPES = (
    "application/json",
    "application/pdf",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/zip",
    "image/gif",
    "image/jpeg",
    "image/png",
    "image/webp",
    "text/csv",
    "text/plain",
)


class AttachmentLimits(msgspec.Struct, frozen=True, kw_only=True):
    """What a tenant accepts as attachments (the tenant file's [attachments])."""

    max_file_bytes: int = 10 * MIB
    # The sum of the sizes of a ticket's attachments (deleted ones do not count).
    max_ticket_bytes: int = 100 * MIB
    # Exact types, or "type/*" for every subtype; sorted.
    allowed_types: tuple[str, ...] = DEFAULT_ALLOWED_TYPES


class DeclaredWebhook(msgspec.Struct, frozen=True, kw_only=True):
    """A webhook subscription declared in the tenant file; its secret is read from `secret_env` at sync time."""

    name: str
    url: str
    secret_env: str
    # None: every event type.
    events: tuple[str, ...] | None = None
    description: str = ""
    active: bool = True


# Seed 004's plans, in requests a minute; a tenant file may redefine them and add its own.
DEFAULT_PLANS = {"standard": 100, "premium": 300}
DEFAULT_PLAN = "standard"


class RateLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Requests a minute per client, and writes a minute per ticket (the tenant file's [rate_limits]), resolved:
    `plans` holds every plan the tenant has, seed 004's included, and every plan named exists."""

    plan: str = DEFAULT_PLAN
    plans: dict[str, int] = msgspec.field(default_factory=lambda: dict(DEFAULT_PLANS))
    # Client id (service accounts) or subject -> plan name.
    clients: dict[str, str] = msgspec.field(default_factory=dict)
    ticket_writes_per_minute: int = 60

    def requests_per_minute(self, client: str) -> int:
        return self.plans[self.clients.get(client, self.plan)]


# The v1 ticket resource's members (seeds 000 and 001) that come from the ticket type's fields.
V1_TICKET_FIELDS = ("category", "title", "description", "attachments", "notes")
# Seed 004's ticket members that come from the ticket type's fields (its custom_fields are the type's other fields).
V1_PLATFORM_FIELDS = ("title", "description", "priority", "tags")
# Seed 004's priority values, each to the value the ticket type's priority field stores.
V1_PRIORITIES = (("low", "low"), ("medium", "normal"), ("high", "high"), ("critical", "urgent"))
# Seed 004's status values, each to the tenant's state names it stands for: a ticket in any of them shows the status,
# and setting the status moves a ticket to the first (seed 003's default states; "new" is seed 004's "open").
V1_STATUSES = (
    ("open", ("new",)),
    ("in_progress", ("open", "pending reminder")),
    ("resolved", ("pending close",)),
    ("closed", ("closed", "merged", "removed")),
)
# Seed 003's permission names.
V1_PERMISSIONS = ("admin.object", "ticket.agent", "ticket.customer")


class V1TicketMapping(msgspec.Struct, frozen=True, kw_only=True):
    """Which ticket type backs /api/v1/tickets (by display-ID prefix) and which of its fields each v1 member is."""

    ticket_type: str = "FAC"
    # v1 member name to field key, sorted by member; a member the file does not map is the field of the same key.
    fields: tuple[tuple[str, str], ...] = tuple((name, name) for name in sorted(V1_TICKET_FIELDS))


class V1PlatformMapping(msgspec.Struct, frozen=True, kw_only=True):
    """Seed 004's /api/v1 tickets: the ticket type behind them, which of its fields each member is, and how its
    priority and status values map onto the type's priority values and the tenant's state names."""

    ticket_type: str = "REQ"
    # Member name to field key, sorted by member, as V1TicketMapping.fields.
    fields: tuple[tuple[str, str], ...] = tuple((name, name) for name in sorted(V1_PLATFORM_FIELDS))
    priorities: tuple[tuple[str, str], ...] = V1_PRIORITIES
    statuses: tuple[tuple[str, tuple[str, ...]], ...] = V1_STATUSES

    def status_of_state(self) -> dict[str, str]:
        """A state name, in lower case, to the status a ticket in that state shows (the first that names it)."""
        by_state: dict[str, str] = {}
        for status, states in self.statuses:
            for state in states:
                by_state.setdefault(state.lower(), status)
        return by_state


def seed_status(status_of_state: Mapping[str, str], state_name: str | None) -> str | None:
    """The seed 004 status a ticket in the state shows (`status_of_state` from V1PlatformMapping.status_of_state): its
    mapped value, else the state's own name."""
    if state_name is None:
        return None
    return status_of_state.get(state_name.lower(), state_name)


class V1Config(msgspec.Struct, frozen=True, kw_only=True):
    """The tenant file's [v1]: how the seeds' v1 surface maps onto the tenant's tickets and roles."""

    tickets: V1TicketMapping = V1TicketMapping()
    platform: V1PlatformMapping = V1PlatformMapping()
    # Seed 003's permission name to roles, sorted by name; a name left out has its default (app/v1/permissions.py).
    permissions: tuple[tuple[str, tuple[str, ...]], ...] = ()


class TenantConfig(msgspec.Struct, frozen=True):
    id: uuid.UUID
    slug: str
    name: str
    tenant_claim: str
    roles: RoleMapping
    realms: tuple[RealmConfig, ...]
    # Names of schemas/templates/*.json ticket types to seed the tenant with.
    ticket_types: tuple[str, ...] = ()
    # The states the tenant starts with; empty means seed 003's defaults (app/ticket_state/service.py).
    states: tuple[StateSeed, ...] = ()
    # Browser origins (scheme://host[:port], exactly as browsers send them) allowed to call the API for this tenant.
    allowed_origins: tuple[str, ...] = ()
    # A disabled tenant is known (its tokens still verify) but refused as "Tenant not found"; its rows are kept.
    # Set by the file's `disabled = true`, or by a sync that no longer finds the tenant's file.
    disabled: bool = False
    attachments: AttachmentLimits = AttachmentLimits()
    # Webhook subscriptions the file declares (app/webhook/service.py syncs them).
    webhooks: tuple[DeclaredWebhook, ...] = ()
    rate_limits: RateLimits = RateLimits()
    v1: V1Config = V1Config()


tenant_config_encoder = msgspec.json.Encoder(order="sorted")
tenant_config_decoder = msgspec.json.Decoder(TenantConfig)
