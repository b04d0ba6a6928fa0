"""Wire types of the ticket-state API (seed 003's fields, with UUID ids)."""

from __future__ import annotations

import datetime
import uuid
from typing import Literal

import msgspec

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
