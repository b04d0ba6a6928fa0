"""Seed 003 translated onto TicketStateService: integer ids to the states' UUIDs and back, state_type_id to state
types, subjects to actor numbers. Every rule (unique names, one default of each kind, next states, what workflows
need, delete refused while referenced) is TicketStateService's."""

from __future__ import annotations

import datetime
import uuid

import msgspec

from app.auth.principal import Principal
from app.idempotency.service import Outcome
from app.ticket_state.dto import StateIn, StateOut, StateType, StateUpdate
from app.ticket_state.service import SYSTEM_ACTOR, TicketStateService
from app.v1.actors.repository import ActorNumberRepository
from app.v1.errors import V1Error
from app.v1.ticket_states.dto import STATE_TYPE_IDS, V1State, V1StateIn, V1StateUpdate

# Seed 003's permissions per route (checked by the v1 router before the request is read: app/v1/permissions.py).
READERS = ("admin.object", "ticket.agent", "ticket.customer")
ADMINISTRATORS = ("admin.object",)
_STATE_TYPES: dict[int, StateType] = {number: name for name, number in STATE_TYPE_IDS.items()}  # type: ignore[misc]


def not_found(state_id: int | str) -> V1Error:
    return V1Error(404, "NOT_FOUND", f"Couldn't find Ticket::State with 'id'={str(state_id)[:64]}")


class V1TicketStateService:
    def __init__(self, states: TicketStateService, actors: ActorNumberRepository) -> None:
        self._states = states
        self._actors = actors

    async def list_states(self, principal: Principal) -> list[V1State]:
        numbered = await self._states.numbered(principal)
        return await self._shown(principal, numbered, [state for _, state in sorted(numbered, key=lambda n: n[0])])

    async def show(self, principal: Principal, state_id: int) -> V1State:
        numbered = await self._states.numbered(principal)
        (shown,) = await self._shown(principal, numbered, [_by_number(numbered, state_id)])
        return shown

    async def create(self, principal: Principal, request: V1StateIn, idempotency_key: str | None) -> Outcome[V1State]:
        numbered = await self._states.numbered(principal)
        state = StateIn(
            name=request.name,
            state_type=_state_type(request.state_type_id),
            next_state_id=_next_state(numbered, request.next_state_id),
            ignore_escalation=request.ignore_escalation,
            default_create=request.default_create,
            default_follow_up=request.default_follow_up,
            note=request.note,
            active=request.active,
        )
        created, replayed = await self._states.create(principal, state, idempotency_key)
        return await self._one(principal, created), replayed

    async def update(
        self, principal: Principal, state_id: int, request: V1StateUpdate, idempotency_key: str | None
    ) -> Outcome[V1State]:
        numbered = await self._states.numbered(principal)
        current = _by_number(numbered, state_id)
        sent = {name: value for name, value in msgspec.structs.asdict(request).items() if value is not msgspec.UNSET}
        if "state_type_id" in sent:
            sent["state_type"] = _state_type(sent.pop("state_type_id"))
        if "next_state_id" in sent:
            sent["next_state_id"] = _next_state(numbered, sent["next_state_id"])
        change = StateUpdate(**sent)
        updated, replayed = await self._states.update(principal, str(current.id), change, idempotency_key)
        return await self._one(principal, updated), replayed

    async def delete(self, principal: Principal, state_id: int, idempotency_key: str | None) -> Outcome[None]:
        current = _by_number(await self._states.numbered(principal), state_id)
        return await self._states.delete(principal, str(current.id), idempotency_key)

    async def _one(self, principal: Principal, state: StateOut) -> V1State:
        (shown,) = await self._shown(principal, await self._states.numbered(principal), [state])
        return shown

    async def _shown(
        self, principal: Principal, numbered: list[tuple[int, StateOut]], states: list[StateOut]
    ) -> list[V1State]:
        numbers = {state.id: number for number, state in numbered}
        # The system (which seeds a tenant's states) is always the tenant's first actor, as in seed 003.
        actors = await self._actors.numbers(
            principal.tenant_id,
            [SYSTEM_ACTOR, *(subject for state in states for subject in (state.created_by, state.updated_by))],
        )
        return [
            V1State(
                id=numbers[state.id],
                state_type_id=STATE_TYPE_IDS[state.state_type],
                name=state.name,
                next_state_id=numbers.get(state.next_state_id) if state.next_state_id is not None else None,
                ignore_escalation=state.ignore_escalation,
                default_create=state.default_create,
                default_follow_up=state.default_follow_up,
                note=state.note,
                active=state.active,
                updated_by_id=actors[state.updated_by],
                created_by_id=actors[state.created_by],
                created_at=seed_time(state.created_at),
                updated_at=seed_time(state.updated_at),
            )
            for state in states
        ]


def seed_time(moment: datetime.datetime) -> str:
    """Seed 003's timestamps: UTC to the millisecond, with Z (2021-11-03T11:51:13.504Z)."""
    utc = moment.astimezone(datetime.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _by_number(numbered: list[tuple[int, StateOut]], state_id: int) -> StateOut:
    found = next((state for number, state in numbered if number == state_id), None)
    if found is None:
        raise not_found(state_id)
    return found


def _integral(member: str, value: float) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise V1Error(422, "VALIDATION_ERROR", f"{member}: must be an integer")
    return int(value)


def _state_type(value: float) -> StateType:
    state_type = _STATE_TYPES.get(_integral("state_type_id", value))
    if state_type is None:
        raise V1Error(422, "VALIDATION_ERROR", "state_type_id: one of 1 to 7")
    return state_type


def _next_state(numbered: list[tuple[int, StateOut]], value: float | None) -> uuid.UUID | None:
    if value is None:
        return None
    state_id = _integral("next_state_id", value)
    found = next((state for number, state in numbered if number == state_id), None)
    if found is None:
        raise V1Error(422, "VALIDATION_ERROR", f"next_state_id: no state has the id {state_id}")
    return found.id
