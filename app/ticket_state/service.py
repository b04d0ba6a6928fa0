"""Rules for ticket states (seed 003): names unique in the tenant, `next_state_id` naming another active state
(required for pending close), exactly one active `default_create` and one active `default_follow_up` state at all
times, and no deletion of a state that tickets or other states reference."""

from __future__ import annotations

import uuid
from typing import Protocol

import msgspec

from app.auth.principal import Principal
from app.db.database import Database
from app.errors import InputValidationFailure
from app.idempotency.service import Idempotency, Outcome
from app.tenancy.model import StateSeed, TenantConfig
from app.ticket_state.cache import TicketStateCache
from app.ticket_state.dto import MAX_NAME_LENGTH, MAX_NOTE_LENGTH, StateIn, StateOut, StateUpdate
from app.ticket_state.errors import StateHasReferences, TicketStateNotFound
from app.ticket_state.repository import DefaultFlag, TicketStateRepository, TicketStateRow


class WorkflowReferences(Protocol):
    """Which ticket types' workflows name a state. Workflows belong to ticket types, a layer above states, so the
    answer is supplied from there (TicketTypeService) when the app is wired."""

    async def types_naming_state(self, tenant_id: uuid.UUID, name: str, *, as_initial: bool = False) -> list[str]:
        """Prefixes of the ticket types whose workflow names the state and still governs tickets; with
        `as_initial`, of the active types whose new tickets start in it."""
        ...


SYSTEM_ACTOR = "system"
DEFAULTS: tuple[DefaultFlag, ...] = ("default_create", "default_follow_up")

# Seed 003's states, used for a tenant whose file does not list its own.
DEFAULT_STATES = (
    StateSeed(name="new", state_type="new", default_create=True),
    StateSeed(name="open", state_type="open", default_follow_up=True),
    StateSeed(name="pending reminder", state_type="pending reminder", ignore_escalation=True),
    StateSeed(name="closed", state_type="closed", ignore_escalation=True),
    StateSeed(name="merged", state_type="merged", ignore_escalation=True),
    StateSeed(name="removed", state_type="removed", ignore_escalation=True, active=False),
    StateSeed(name="pending close", state_type="pending close", ignore_escalation=True, next_state="closed"),
)


def to_out(row: TicketStateRow) -> StateOut:
    # The wire type has the row's fields, in the row's order, up to the integer id (which only v1 shows).
    return StateOut(*msgspec.structs.astuple(row)[: len(StateOut.__struct_fields__)])


def parse_state_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise TicketStateNotFound(value) from None


_state_decoder = msgspec.json.Decoder(StateOut)
_nothing_decoder = msgspec.json.Decoder(None)


class TicketStateService:
    def __init__(
        self,
        db: Database,
        repository: TicketStateRepository,
        workflows: WorkflowReferences,
        cache: TicketStateCache,
        keys: Idempotency,
    ) -> None:
        self._db = db
        self._repository = repository
        self._workflows = workflows
        self._cache = cache
        self._keys = keys

    async def list_states(self, principal: Principal) -> list[StateOut]:
        return [to_out(row) for row in await self._repository.list_all(principal.tenant_id)]

    async def numbered(self, principal: Principal) -> list[tuple[int, StateOut]]:
        """The tenant's states with their integer ids (seed 003's), in the order they were created."""
        return [(row.serial, to_out(row)) for row in await self._repository.list_all(principal.tenant_id)]

    async def get(self, principal: Principal, state_id: str) -> StateOut:
        row = await self._repository.get(principal.tenant_id, parse_state_id(state_id))
        if row is None:
            raise TicketStateNotFound(state_id)
        return to_out(row)

    async def create(self, principal: Principal, state: StateIn, idempotency_key: str | None) -> Outcome[StateOut]:
        claim = self._keys.claim(principal, idempotency_key, "create_state", state)
        return await self._keys.once(principal, claim, lambda: self._create(principal, state), _state_decoder)

    async def _create(self, principal: Principal, state: StateIn) -> StateOut:
        async with self._db.transaction():
            states = await self._locked_states(principal.tenant_id)
            _check(state, None, states)
            await self._move_defaults(principal.tenant_id, state, None)
            row = await self._repository.insert(principal.tenant_id, state, principal.subject)
        return to_out(row)

    async def update(
        self, principal: Principal, state_id: str, change: StateUpdate, idempotency_key: str | None
    ) -> Outcome[StateOut]:
        """Apply the members sent; the others keep their values."""
        claim = self._keys.claim(principal, idempotency_key, "update_state", state_id, change)
        return await self._keys.once(
            principal, claim, lambda: self._update(principal, state_id, change), _state_decoder
        )

    async def _update(self, principal: Principal, state_id: str, change: StateUpdate) -> StateOut:
        wanted = parse_state_id(state_id)
        async with self._db.transaction():
            states = await self._locked_states(principal.tenant_id)
            if wanted not in states:
                raise TicketStateNotFound(state_id)
            state = change.applied_to(_editable(states[wanted]))
            _check(state, wanted, states)
            await self._check_workflows(principal.tenant_id, states[wanted], state)
            await self._move_defaults(principal.tenant_id, state, wanted)
            row = await self._repository.update(principal.tenant_id, wanted, state, principal.subject)
            # Tickets name their state: every worker's cache learns the new name and type.
            await self._repository.notify_changed(principal.tenant_id)
        # This worker need not wait for its own notification.
        self._cache.invalidate(principal.tenant_id)
        return to_out(row)

    async def delete(self, principal: Principal, state_id: str, idempotency_key: str | None) -> Outcome[None]:
        claim = self._keys.claim(principal, idempotency_key, "delete_state", state_id)
        return await self._keys.once(principal, claim, lambda: self._delete(principal, state_id), _nothing_decoder)

    async def _delete(self, principal: Principal, state_id: str) -> None:
        wanted = parse_state_id(state_id)
        async with self._db.transaction():
            states = await self._locked_states(principal.tenant_id)
            current = states.get(wanted)
            if current is None:
                raise TicketStateNotFound(state_id)
            for flag in DEFAULTS:
                if getattr(current, flag) and current.active:
                    raise InputValidationFailure(
                        "Invalid ticket state change",
                        {flag: f"this is the tenant's {flag} state; make another state the {flag} state first"},
                    )
            if await self._repository.is_referenced(
                principal.tenant_id, wanted
            ) or await self._workflows.types_naming_state(principal.tenant_id, current.name):
                raise StateHasReferences()
            await self._repository.delete(principal.tenant_id, wanted)
            # A ticket's history may still name the state: from now on without its name.
            await self._repository.notify_changed(principal.tenant_id)
        self._cache.invalidate(principal.tenant_id)

    async def _locked_states(self, tenant_id: uuid.UUID) -> dict[uuid.UUID, TicketStateRow]:
        await self._repository.lock_tenant(tenant_id)
        return {row.id: row for row in await self._repository.list_all(tenant_id)}

    async def _check_workflows(self, tenant_id: uuid.UUID, current: TicketStateRow, state: StateIn) -> None:
        """Workflows name states: a named state keeps its name, and an initial state stays active."""
        reason: dict[str, str] = {}
        renamed = state.name.lower() != current.name.lower()
        if renamed and (users := await self._workflows.types_naming_state(tenant_id, current.name)):
            reason["name"] = (
                f"the workflow of ticket type {', '.join(users)} names this state; change the workflow first"
            )
        deactivated = current.active and not state.active
        if deactivated and (
            users := await self._workflows.types_naming_state(tenant_id, current.name, as_initial=True)
        ):
            reason["active"] = f"new tickets of type {', '.join(users)} start in this state"
        if reason:
            raise InputValidationFailure("Invalid ticket state", reason)

    async def _move_defaults(self, tenant_id: uuid.UUID, state: StateIn, state_id: uuid.UUID | None) -> None:
        # Making a state the default moves the flag: the tenant keeps exactly one, and the request said which.
        for flag in DEFAULTS:
            if getattr(state, flag):
                await self._repository.clear_default(tenant_id, flag, state_id)

    async def seed(self, tenants: list[TenantConfig]) -> list[str]:
        """Give each tenant without states its configured (or the default) states; returns the seeded slugs."""
        seeded: list[str] = []
        for tenant in tenants:
            async with self._db.transaction():
                if await self._locked_states(tenant.id):
                    continue
                ids: dict[str, uuid.UUID] = {}
                seeds = tenant.states or DEFAULT_STATES
                for seed in seeds:
                    state = StateIn(
                        name=seed.name,
                        state_type=seed.state_type,  # type: ignore[arg-type]
                        ignore_escalation=seed.ignore_escalation,
                        default_create=seed.default_create,
                        default_follow_up=seed.default_follow_up,
                        note=seed.note,
                        active=seed.active,
                    )
                    ids[seed.name] = (await self._repository.insert(tenant.id, state, SYSTEM_ACTOR)).id
                for seed in seeds:
                    if seed.next_state is not None:
                        await self._repository.set_next_state(tenant.id, ids[seed.name], ids[seed.next_state])
                await self._repository.assign_default_to_stateless_tickets(tenant.id)
                seeded.append(tenant.slug)
        return seeded


def _editable(row: TicketStateRow) -> StateIn:
    """The members of a stored state that a PUT may change."""
    return StateIn(**{name: getattr(row, name) for name in StateIn.__struct_fields__})


def _check(state: StateIn, state_id: uuid.UUID | None, states: dict[uuid.UUID, TicketStateRow]) -> None:
    reason: dict[str, str] = {}
    name = state.name.strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH or name != state.name:
        reason["name"] = f"1 to {MAX_NAME_LENGTH} characters, without leading or trailing spaces"
    elif any(row.name.lower() == name.lower() and row.id != state_id for row in states.values()):
        reason["name"] = f"{name!r} is already used by another state of this tenant"
    if state.next_state_id is not None:
        target = states.get(state.next_state_id)
        if state.next_state_id == state_id:
            reason["next_state_id"] = "must name another state, not this one"
        elif target is None or not target.active:
            reason["next_state_id"] = "must name an active state of this tenant"
    elif state.state_type == "pending close":
        reason["next_state_id"] = "required for a pending close state: the state it moves to when the time comes"
    for flag in DEFAULTS:
        if getattr(state, flag) and not state.active:
            reason[flag] = f"an inactive state cannot be the {flag} state"
        current = states.get(state_id) if state_id is not None else None
        if (
            current is not None
            and getattr(current, flag)
            and current.active
            and not (getattr(state, flag) and state.active)
        ):
            reason[flag] = f"this is the tenant's {flag} state; make another state the {flag} state first"
    if state_id is not None and not state.active and states[state_id].active:
        pointing = sorted(row.name for row in states.values() if row.next_state_id == state_id and row.active)
        if pointing:
            reason["active"] = f"active states name this state as their next_state_id: {', '.join(pointing)}"
    if len(state.note or "") > MAX_NOTE_LENGTH:
        reason["note"] = f"at most {MAX_NOTE_LENGTH} characters"
    if reason:
        raise InputValidationFailure("Invalid ticket state", reason)
