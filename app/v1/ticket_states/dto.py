"""Wire types of seed 003's ticket states: integer ids, integer state types, integer actors."""

from __future__ import annotations

import functools
from typing import Annotated, Any, ClassVar

import msgspec
from msgspec import UNSET, Meta, UnsetType

from app.ticket_state.dto import StateName, StateNote

# Seed 003's numbering of the state types.
STATE_TYPE_IDS = {
    "new": 1,
    "open": 2,
    "pending reminder": 3,
    "pending close": 4,
    "closed": 5,
    "merged": 6,
    "removed": 7,
}
StateTypeId = Annotated[
    int,
    Meta(
        ge=1,
        le=7,
        description="1 new, 2 open, 3 pending reminder, 4 pending close, 5 closed, 6 merged, 7 removed",
    ),
]
StateId = Annotated[int, Meta(ge=1, description="Another state's integer id")]


class _V1StateInAsEnforced(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: StateName
    state_type_id: StateTypeId
    next_state_id: StateId | None = None
    ignore_escalation: bool = False
    default_create: bool = False
    default_follow_up: bool = False
    note: StateNote | None = None
    active: bool = True


class _V1StateUpdateAsEnforced(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: StateName = ""
    state_type_id: StateTypeId = 1
    next_state_id: StateId | None = None
    ignore_escalation: bool = False
    default_create: bool = False
    default_follow_up: bool = False
    note: StateNote | None = None
    active: bool = True


# JSON has one kind of number: 2.0 is the integer 2 (JSON Schema agrees), so ids are taken as numbers and the
# service takes those with an integral value (Integral below); the document states the integers.
_Number = int | float


class V1StateIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A create (seed 003): name and state_type_id are required."""

    documented_as: ClassVar[Any] = functools.partial(msgspec.json.schema, _V1StateInAsEnforced)
    name: StateName
    state_type_id: _Number
    next_state_id: _Number | None = None
    ignore_escalation: bool = False
    default_create: bool = False
    default_follow_up: bool = False
    note: StateNote | None = None
    active: bool = True


class V1StateUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """An update: the members sent replace the state's (seed 003 sends just {"note": ...})."""

    documented_as: ClassVar[Any] = functools.partial(msgspec.json.schema, _V1StateUpdateAsEnforced)
    name: StateName | UnsetType = UNSET
    state_type_id: _Number | UnsetType = UNSET
    next_state_id: _Number | UnsetType | None = UNSET
    ignore_escalation: bool | UnsetType = UNSET
    default_create: bool | UnsetType = UNSET
    default_follow_up: bool | UnsetType = UNSET
    note: StateNote | UnsetType | None = UNSET
    active: bool | UnsetType = UNSET


class V1State(msgspec.Struct, frozen=True):
    """A state as seed 003 shows it, in its order."""

    id: int
    state_type_id: int
    name: str
    next_state_id: int | None
    ignore_escalation: bool
    default_create: bool
    default_follow_up: bool
    note: str | None
    active: bool
    updated_by_id: int
    created_by_id: int
    # UTC to the millisecond, as in seed 003: 2021-11-03T11:51:13.504Z.
    created_at: str
    updated_at: str


class V1StateError(msgspec.Struct, frozen=True):
    """Seed 003's error body: {"error": "Can't delete, object has references."}."""

    error: str


class Deleted(msgspec.Struct, frozen=True):
    """Seed 003's answer to a delete: {}."""
