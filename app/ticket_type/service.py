"""Rules for ticket types: definitions are validated, versions only grow, field UUIDs never change meaning,
types are archived (never deleted), and tenants can be seeded from the templates in schemas/templates/."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import msgspec

from app.auth.principal import Principal
from app.config import PROJECT_ROOT
from app.errors import AppError, InputValidationFailure
from app.tenancy.model import TenantConfig
from app.ticket_type.cache import TicketTypeCache
from app.ticket_type.dto import TicketTypeDefinition, TicketTypeOut, definition_decoder, definition_encoder
from app.ticket_type.repository import PrefixTaken, TicketTypeRepository
from app.ticket_type.validators import CompiledType, validate_definition

log = logging.getLogger("app.ticket_type")

TEMPLATES_DIR = PROJECT_ROOT / "schemas" / "templates"
SYSTEM_ACTOR = "system"
# Template-seeded types get a deterministic id per tenant, so seeding twice is a no-op.
_TEMPLATE_NAMESPACE = uuid.UUID("5b0f7d1e-2f4c-4b8a-9d61-3c2a1e0f9b7d")


class TicketTypeNotFound(AppError):
    status = 404
    include_status = False

    def __init__(self, type_id: str) -> None:
        super().__init__(f"Ticket type not found ({type_id[:64]})")


def parse_type_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise TicketTypeNotFound(value) from None


def to_out(row: Any) -> TicketTypeOut:
    definition = definition_decoder.decode(row["definition"])
    return TicketTypeOut(
        id=row["id"],
        name=definition.name,
        description=definition.description,
        prefix=row["prefix"],
        version=row["version"],
        archived=row["archived_at"] is not None,
        fields=definition.fields,
        created_at=row["created_at"],
        created_by=row["created_by"],
        updated_at=row["updated_at"],
        updated_by=row["updated_by"],
    )


class TicketTypeService:
    def __init__(self, repository: TicketTypeRepository, cache: TicketTypeCache) -> None:
        self._repository = repository
        self._cache = cache

    async def list_types(self, principal: Principal, include_archived: bool) -> list[TicketTypeOut]:
        return [to_out(row) for row in await self._repository.list_all(principal.tenant_id, include_archived)]

    async def get(self, principal: Principal, type_id: str) -> TicketTypeOut:
        row = await self._repository.get(principal.tenant_id, parse_type_id(type_id))
        if row is None:
            raise TicketTypeNotFound(type_id)
        return to_out(row)

    async def compiled(self, principal: Principal, type_id: str) -> CompiledType:
        compiled = await self._cache.by_id(principal.tenant_id, parse_type_id(type_id))
        if compiled is None:
            raise TicketTypeNotFound(type_id)
        return compiled

    async def create(self, principal: Principal, submitted: TicketTypeDefinition) -> TicketTypeOut:
        definition = validate_definition(msgspec.to_builtins(submitted))
        async with self._repository.transaction() as conn:
            try:
                row = await self._repository.insert(
                    conn, principal.tenant_id, uuid.uuid4(), definition.prefix, _encode(definition), principal.subject
                )
            except PrefixTaken:
                raise _prefix_taken(definition.prefix) from None
            await self._repository.notify_changed(conn, principal.tenant_id)
        # This worker need not wait for its own notification.
        self._cache.invalidate(principal.tenant_id)
        return to_out(row)

    async def replace(self, principal: Principal, type_id: str, submitted: TicketTypeDefinition) -> TicketTypeOut:
        """A new version. Existing tickets keep their data; field UUIDs keep their meaning across versions."""
        definition = validate_definition(msgspec.to_builtins(submitted))
        type_uuid = parse_type_id(type_id)
        async with self._repository.transaction() as conn:
            current = await self._repository.lock(conn, principal.tenant_id, type_uuid)
            if current is None:
                raise TicketTypeNotFound(type_id)
            if current["archived_at"] is not None:
                raise InputValidationFailure(
                    "Ticket type is archived", {"id": "an archived ticket type cannot be changed"}
                )
            if definition.prefix != current["prefix"]:
                raise InputValidationFailure(
                    "Invalid ticket type definition",
                    {"prefix": f"cannot change from {current['prefix']!r}: display IDs of existing tickets use it"},
                )
            history = await self._repository.version_definitions(conn, principal.tenant_id, type_uuid)
            _check_field_identity(definition, [definition_decoder.decode(d) for d in history])
            row = await self._repository.save_version(
                conn, principal.tenant_id, type_uuid, current["version"] + 1, _encode(definition), principal.subject
            )
            await self._repository.notify_changed(conn, principal.tenant_id)
        # This worker need not wait for its own notification.
        self._cache.invalidate(principal.tenant_id)
        return to_out(row)

    async def archive(self, principal: Principal, type_id: str) -> TicketTypeOut:
        type_uuid = parse_type_id(type_id)
        async with self._repository.transaction() as conn:
            if await self._repository.lock(conn, principal.tenant_id, type_uuid) is None:
                raise TicketTypeNotFound(type_id)
            row = await self._repository.archive(conn, principal.tenant_id, type_uuid, principal.subject)
            await self._repository.notify_changed(conn, principal.tenant_id)
        # This worker need not wait for its own notification.
        self._cache.invalidate(principal.tenant_id)
        return to_out(row)

    async def seed_templates(self, tenants: list[TenantConfig]) -> list[str]:
        """Create each tenant's template types that do not exist yet; returns "slug:PREFIX" for each created."""
        created: list[str] = []
        for tenant in tenants:
            for template in tenant.ticket_types:
                definition = load_template(template)
                type_id = uuid.uuid5(_TEMPLATE_NAMESPACE, f"{tenant.id}:{template}")
                async with self._repository.transaction() as conn:
                    try:
                        row = await self._repository.insert(
                            conn, tenant.id, type_id, definition.prefix, _encode(definition), SYSTEM_ACTOR
                        )
                    except PrefixTaken:
                        log.warning(
                            "template not seeded: prefix in use",
                            extra={"tenant": tenant.slug, "template": template, "prefix": definition.prefix},
                        )
                        continue
                    if row is not None:
                        await self._repository.notify_changed(conn, tenant.id)
                        created.append(f"{tenant.slug}:{definition.prefix}")
        return created


def load_template(name: str) -> TicketTypeDefinition:
    return validate_definition(json.loads((TEMPLATES_DIR / f"{name}.json").read_text()))


def _encode(definition: TicketTypeDefinition) -> str:
    return definition_encoder.encode(definition).decode()


def _prefix_taken(prefix: str) -> InputValidationFailure:
    return InputValidationFailure(
        "Invalid ticket type definition",
        {"prefix": f"{prefix!r} is already used by another ticket type of this tenant (archived types keep theirs)"},
    )


def _check_field_identity(definition: TicketTypeDefinition, history: list[TicketTypeDefinition]) -> None:
    known: dict[str, str] = {}
    for version in history:
        for field in version.fields:
            known.setdefault(field.id, field.key)
    reason: dict[str, str] = {}
    for index, field in enumerate(definition.fields):
        earlier = known.get(field.id)
        if earlier is not None and earlier != field.key:
            reason[f"fields[{index}].id"] = (
                f"{field.id} was field {earlier!r}; a field UUID never changes meaning (use a new UUID)"
            )
    if reason:
        raise InputValidationFailure("Invalid ticket type definition", reason)
