"""Wire types of the ticket-state API (seed 003's fields, with UUID ids)."""

from __future__ import annotations

import datetime
import uuid
from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

StateType = Literal["new", "open", "pending reminder", "pending close", "closed", "merged", "removed"]


class StateIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: str
    state_type: StateType
    next_state_id: uuid.UUID | None = None
    ignore_escalation: bool = False
    default_create: bool = False
    default_follow_up: bool = False
    note: str | None = None
    active: bool = True


class StateUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A PUT: the members sent replace the state's; members left out keep their values (seed 003 changes a state
    with just `{"note": ...}`). `null` clears `next_state_id` or `note`."""

    name: str | UnsetType = UNSET
    state_type: StateType | UnsetType = UNSET
    next_state_id: uuid.UUID | UnsetType | None = UNSET
    ignore_escalation: bool | UnsetType = UNSET
    default_create: bool | UnsetType = UNSET
    default_follow_up: bool | UnsetType = UNSET
    note: str | UnsetType | None = UNSET
    active: bool | UnsetType = UNSET

    def applied_to(self, current: StateIn) -> StateIn:
        """The state after this change."""
        sent = {name: value for name, value in msgspec.structs.asdict(self).items() if value is not UNSET}
        return msgspec.structs.replace(current, **sent)


class StateOut(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    state_type: StateType
    next_state_id: uuid.UUID | None
    ignore_escalation: bool
    default_create: bool
    default_follow_up: bool
    note: str | None
    active: bool
    created_by: str
    created_at: datetime.datetime
    updated_by: str
    updated_at: datetime.datetime


class StateList(msgspec.Struct, frozen=True):
    data: list[StateOut]
