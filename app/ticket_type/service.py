"""Rules for ticket types: definitions are validated, versions only grow, field UUIDs never change meaning,
types are archived (never deleted), and tenants can be seeded from the templates in schemas/templates/."""

from __future__ import annotations

import json
import logging
import uuid

import msgspec

from app.auth.principal import Principal
from app.config import PROJECT_ROOT
from app.db.database import Database
from app.errors import InputValidationFailure
from app.idempotency.service import Idempotency, Outcome
from app.tenancy.model import TenantConfig
from app.ticket_state.dto import StateIn
from app.ticket_state.repository import TicketStateRepository
from app.ticket_type.cache import TicketTypeCache
from app.ticket_type.compiled import CompiledType, validate_definition
from app.ticket_type.dto import TicketTypeDefinition, TicketTypeOut, Workflow, definition_decoder, definition_encoder
from app.ticket_type.errors import TicketTypeNotFound
from app.ticket_type.repository import PrefixTaken, TicketTypeRepository, TicketTypeRow
from app.ticket_type.workflow import implied_state_types, named_states

log = logging.getLogger("app.ticket_type")

TEMPLATES_DIR = PROJECT_ROOT / "schemas" / "templates"
SYSTEM_ACTOR = "system"
# Template-seeded types get a deterministic id per tenant, so seeding twice is a no-op.
_TEMPLATE_NAMESPACE = uuid.UUID("5b0f7d1e-2f4c-4b8a-9d61-3c2a1e0f9b7d")


def parse_type_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise TicketTypeNotFound(value) from None


_workflow_decoder = msgspec.json.Decoder(Workflow)


def to_out(row: TicketTypeRow) -> TicketTypeOut:
    definition = definition_decoder.decode(row.definition)
    return TicketTypeOut(
        id=row.id,
        name=definition.name,
        description=definition.description,
        prefix=row.prefix,
        version=row.version,
        archived=row.archived_at is not None,
        fields=definition.fields,
        workflow=definition.workflow,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


_type_decoder = msgspec.json.Decoder(TicketTypeOut)


class TicketTypeService:
    def __init__(
        self,
        db: Database,
        repository: TicketTypeRepository,
        cache: TicketTypeCache,
        states: TicketStateRepository,
        keys: Idempotency,
    ) -> None:
        self._db = db
        self._repository = repository
        self._cache = cache
        self._states = states
        self._keys = keys

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

    async def create(
        self, principal: Principal, submitted: TicketTypeDefinition, idempotency_key: str | None
    ) -> Outcome[TicketTypeOut]:
        claim = self._keys.claim(principal, idempotency_key, "create_type", submitted)
        return await self._keys.once(principal, claim, lambda: self._create(principal, submitted), _type_decoder)

    async def _create(self, principal: Principal, submitted: TicketTypeDefinition) -> TicketTypeOut:
        definition = validate_definition(msgspec.to_builtins(submitted))
        async with self._db.transaction():
            await self._check_workflow_states(principal.tenant_id, definition.workflow)
            try:
                row = await self._repository.insert(
                    principal.tenant_id, uuid.uuid4(), definition.prefix, _encode(definition), principal.subject
                )
            except PrefixTaken:
                raise _prefix_taken(definition.prefix) from None
            assert row is not None  # a new random id is never taken
            await self._repository.notify_changed(principal.tenant_id)
        # This worker need not wait for its own notification.
        self._cache.invalidate(principal.tenant_id)
        return to_out(row)

    async def replace(
        self, principal: Principal, type_id: str, submitted: TicketTypeDefinition, idempotency_key: str | None
    ) -> Outcome[TicketTypeOut]:
        """A new version. Existing tickets keep their data; field UUIDs keep their meaning across versions."""
        claim = self._keys.claim(principal, idempotency_key, "replace_type", type_id, submitted)
        return await self._keys.once(
            principal, claim, lambda: self._replace(principal, type_id, submitted), _type_decoder
        )

    async def _replace(self, principal: Principal, type_id: str, submitted: TicketTypeDefinition) -> TicketTypeOut:
        definition = validate_definition(msgspec.to_builtins(submitted))
        type_uuid = parse_type_id(type_id)
        async with self._db.transaction():
            current = await self._repository.lock(principal.tenant_id, type_uuid)
            if current is None:
                raise TicketTypeNotFound(type_id)
            if current.archived_at is not None:
                raise InputValidationFailure(
                    "Ticket type is archived", {"id": "an archived ticket type cannot be changed"}
                )
            if definition.prefix != current.prefix:
                raise InputValidationFailure(
                    "Invalid ticket type definition",
                    {"prefix": f"cannot change from {current.prefix!r}: display IDs of existing tickets use it"},
                )
            history = await self._repository.version_definitions(principal.tenant_id, type_uuid)
            _check_field_identity(definition, [definition_decoder.decode(d) for d in history])
            await self._check_workflow_states(principal.tenant_id, definition.workflow)
            await self._check_tickets_fit_workflow(principal.tenant_id, type_uuid, definition.workflow)
            row = await self._repository.save_version(
                principal.tenant_id, type_uuid, current.version + 1, _encode(definition), principal.subject
            )
            await self._repository.notify_changed(principal.tenant_id)
        # This worker need not wait for its own notification.
        self._cache.invalidate(principal.tenant_id)
        return to_out(row)

    async def archive(self, principal: Principal, type_id: str, idempotency_key: str | None) -> Outcome[TicketTypeOut]:
        claim = self._keys.claim(principal, idempotency_key, "archive_type", type_id)
        return await self._keys.once(principal, claim, lambda: self._archive(principal, type_id), _type_decoder)

    async def _archive(self, principal: Principal, type_id: str) -> TicketTypeOut:
        type_uuid = parse_type_id(type_id)
        async with self._db.transaction():
            if await self._repository.lock(principal.tenant_id, type_uuid) is None:
                raise TicketTypeNotFound(type_id)
            row = await self._repository.archive(principal.tenant_id, type_uuid, principal.subject)
            await self._repository.notify_changed(principal.tenant_id)
        # This worker need not wait for its own notification.
        self._cache.invalidate(principal.tenant_id)
        return to_out(row)

    async def types_naming_state(self, tenant_id: uuid.UUID, name: str, *, as_initial: bool = False) -> list[str]:
        """Prefixes of the ticket types whose workflow names the state and still governs tickets; with
        `as_initial`, of the active types whose new tickets start in it (for the ticket-state rules)."""
        users: list[str] = []
        for row in await self._repository.governing_workflows(tenant_id):
            workflow = _workflow_decoder.decode(row.workflow)
            if as_initial:
                named = [workflow.initialState] if workflow.initialState is not None and not row.archived else []
            else:
                named = [state for _, state in named_states(workflow)]
            if any(state.lower() == name.lower() for state in named):
                users.append(row.prefix)
        return users

    async def seed_templates(self, tenants: list[TenantConfig]) -> list[str]:
        """Create each tenant's template types that do not exist yet; returns "slug:PREFIX" for each created."""
        created: list[str] = []
        for tenant in tenants:
            for template in tenant.ticket_types:
                definition = load_template(template)
                type_id = uuid.uuid5(_TEMPLATE_NAMESPACE, f"{tenant.id}:{template}")
                try:
                    seeded = await self._seed_template(tenant.id, type_id, definition)
                except PrefixTaken:
                    log.warning(
                        "template not seeded: prefix in use",
                        extra={"tenant": tenant.slug, "template": template, "prefix": definition.prefix},
                    )
                    continue
                except InputValidationFailure as exc:
                    # E.g. the tenant file made the state the workflow starts in inactive: the tenant's choice.
                    log.warning(
                        "template not seeded: its workflow does not fit the tenant's states",
                        extra={"tenant": tenant.slug, "template": template, "reason": exc.reason},
                    )
                    continue
                if seeded:
                    created.append(f"{tenant.slug}:{definition.prefix}")
        return created

    async def _seed_template(self, tenant_id: uuid.UUID, type_id: uuid.UUID, definition: TicketTypeDefinition) -> bool:
        """Whether the template type was created; a refusal (raised) leaves nothing behind, not even its states."""
        async with self._db.transaction():
            if await self._repository.exists(tenant_id, type_id):
                return False
            if definition.workflow is not None:
                await self._create_missing_states(tenant_id, definition.workflow)
            await self._check_workflow_states(tenant_id, definition.workflow)
            row = await self._repository.insert(
                tenant_id, type_id, definition.prefix, _encode(definition), SYSTEM_ACTOR
            )
            if row is None:  # another process seeded it meanwhile
                return False
            await self._repository.notify_changed(tenant_id)
            return True

    async def _check_workflow_states(self, tenant_id: uuid.UUID, workflow: Workflow | None) -> None:
        """Every state a workflow names must be a state of the tenant, and its initial state an active one."""
        if workflow is None:
            return
        # Held until commit: no state is renamed or deleted between this check and the type's save.
        await self._states.lock_tenant(tenant_id)
        states = {row.name.lower(): row for row in await self._states.list_all(tenant_id)}
        reason: dict[str, str] = {}
        for where, name in named_states(workflow):
            if name.lower() not in states:
                reason.setdefault(where, f"no ticket state named {name!r} in this tenant")
        initial = states.get((workflow.initialState or "").lower())
        if initial is not None and not initial.active:
            reason["workflow.initialState"] = f"the state {initial.name!r} is not active"
        if reason:
            raise InputValidationFailure("Invalid ticket type definition", reason)

    async def _check_tickets_fit_workflow(
        self, tenant_id: uuid.UUID, type_id: uuid.UUID, workflow: Workflow | None
    ) -> None:
        """A new workflow must name every state the type's tickets are in, or those tickets could never move."""
        if workflow is None or workflow.transitions is None:
            return
        named = {name.lower() for _, name in named_states(workflow)}
        stranded = [
            name for name in await self._repository.states_of_tickets(tenant_id, type_id) if name.lower() not in named
        ]
        if stranded:
            raise InputValidationFailure(
                "Invalid ticket type definition",
                {
                    "workflow.transitions": "tickets of this type are in states the workflow does not name, so they "
                    f"could never move: {', '.join(stranded)}"
                },
            )

    async def _create_missing_states(self, tenant_id: uuid.UUID, workflow: Workflow) -> None:
        """A template's workflow names its states; a tenant without them gets them (see implied_state_types)."""
        await self._states.lock_tenant(tenant_id)
        existing = {row.name.lower() for row in await self._states.list_all(tenant_id)}
        for name, state_type in implied_state_types(workflow).items():
            if name.lower() not in existing:
                state = StateIn(name=name, state_type=state_type)
                await self._states.insert(tenant_id, state, SYSTEM_ACTOR)
                existing.add(name.lower())


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
