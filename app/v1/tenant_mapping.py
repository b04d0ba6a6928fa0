"""The tenant file's [v1] section, resolved against the tenant's ticket types: which type backs each v1 ticket
resource (seeds 000/001, and seed 004), which of its fields each v1 member is, and which state names are v1 status
values."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from app.tenancy.model import V1Config, V1PlatformMapping, V1TicketMapping, seed_status
from app.tenancy.registry import TenantRegistry
from app.ticket_type.cache import TicketTypeCache
from app.ticket_type.compiled import CompiledField, CompiledType
from app.ticket_type.dto import Workflow
from app.v1.errors import TICKET_NOT_FOUND, V1Error


@dataclass(frozen=True, slots=True)
class TicketMapping:
    ticket_type: CompiledType
    # v1 member name to the type's field; a member whose field key the type lacks is left out.
    members: dict[str, CompiledField]
    # The v1 status values: the names the type's workflow gives its states (None: no workflow, any state name).
    statuses: tuple[str, ...] | None

    def member_of(self, field_id: str) -> str | None:
        return next((name for name, field in self.members.items() if field.definition.id == field_id), None)


@dataclass(frozen=True, slots=True)
class PlatformMapping:
    """Seed 004's tickets on one tenant: the type, its fields by member name (title, description, priority, tags),
    the rest of its fields by key (the custom_fields), and the priority and status values both ways."""

    ticket_type: CompiledType
    members: dict[str, CompiledField]
    custom_fields: dict[str, CompiledField]
    # Seed 004's priority value to the stored one, and back.
    priorities: dict[str, str]
    stored_priorities: dict[str, str]
    # Seed 004's status value to the state names it stands for (the first is the one it sets).
    statuses: dict[str, tuple[str, ...]]
    # A state name, in lower case, to its status.
    status_of_state: dict[str, str]

    def field_id(self, member: str) -> str | None:
        field = self.members.get(member)
        return field.definition.id if field is not None else None

    def status(self, state_name: str | None) -> str | None:
        """The status a ticket in this state shows: its mapped value, else the state's own name."""
        return seed_status(self.status_of_state, state_name)

    def priority(self, stored: Any) -> Any:
        """The priority value a stored one shows: its seed 004 value, else as stored."""
        return self.stored_priorities.get(stored, stored) if isinstance(stored, str) else stored


class TenantMapping:
    """The mappings, built once per tenant for the configuration and ticket type they were built from: the tenant
    registry and the type cache replace those objects when they change, so an entry whose objects are not the current
    ones is simply built again."""

    def __init__(self, registry: TenantRegistry, types: TicketTypeCache) -> None:
        self._registry = registry
        self._types = types
        self._tickets: dict[uuid.UUID, tuple[V1TicketMapping, CompiledType, TicketMapping]] = {}
        self._platform: dict[uuid.UUID, tuple[V1PlatformMapping, CompiledType, PlatformMapping]] = {}

    def config(self, tenant_id: uuid.UUID) -> V1Config:
        tenant = self._registry.tenant(tenant_id)
        return tenant.config.v1 if tenant is not None else V1Config()

    async def tickets(self, tenant_id: uuid.UUID) -> TicketMapping:
        """The mapping of the v1 ticket resource; a tenant without its ticket type has no v1 tickets (404)."""
        config = self.config(tenant_id).tickets
        ticket_type = await self._types.by_prefix(tenant_id, config.ticket_type)
        if ticket_type is None:
            raise V1Error(404, *TICKET_NOT_FOUND)
        cached = self._tickets.get(tenant_id)
        if cached is not None and cached[0] is config and cached[1] is ticket_type:
            return cached[2]
        by_key = {field.definition.key: field for field in ticket_type.fields.values()}
        members = {name: by_key[key] for name, key in config.fields if key in by_key}
        workflow = ticket_type.definition.workflow
        mapping = TicketMapping(ticket_type, members, workflow_statuses(workflow) if workflow is not None else None)
        self._tickets[tenant_id] = (config, ticket_type, mapping)
        return mapping

    async def platform(self, tenant_id: uuid.UUID) -> PlatformMapping | None:
        """The mapping of seed 004's tickets; None for a tenant without their ticket type (it has no such tickets)."""
        config = self.config(tenant_id).platform
        ticket_type = await self._types.by_prefix(tenant_id, config.ticket_type)
        if ticket_type is None:
            return None
        cached = self._platform.get(tenant_id)
        if cached is not None and cached[0] is config and cached[1] is ticket_type:
            return cached[2]
        by_key = {field.definition.key: field for field in ticket_type.fields.values()}
        members = {name: by_key[key] for name, key in config.fields if key in by_key}
        mapped = {field.definition.id for field in members.values()}
        custom = {key: field for key, field in by_key.items() if field.definition.id not in mapped}
        priorities = dict(config.priorities)
        mapping = PlatformMapping(
            ticket_type=ticket_type,
            members=members,
            custom_fields=custom,
            priorities=priorities,
            stored_priorities={stored: name for name, stored in reversed(config.priorities)},
            statuses=dict(config.statuses),
            status_of_state=config.status_of_state(),
        )
        self._platform[tenant_id] = (config, ticket_type, mapping)
        return mapping


def workflow_statuses(workflow: Workflow) -> tuple[str, ...] | None:
    """The workflow's states in the order a ticket meets them: depth first from the initial state along the
    transitions as declared (seed 000's PENDING, IN_PROGRESS, COMPLETED, CANCELLED), then any it names otherwise."""
    transitions = workflow.transitions
    if transitions is None:
        return None
    by_source = {source.lower(): targets for source, targets in transitions.items()}
    ordered: dict[str, str] = {}

    def visit(name: str) -> None:
        if name.lower() in ordered:
            return
        ordered[name.lower()] = name
        for target in by_source.get(name.lower(), ()):
            visit(target)

    if workflow.initialState is not None:
        visit(workflow.initialState)
    for source, targets in transitions.items():
        for name in (source, *targets):
            visit(name)
    return tuple(ordered.values())
