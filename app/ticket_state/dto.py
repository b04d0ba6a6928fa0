"""Wire types of the ticket-state API (seed 003's fields, with UUID ids)."""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

StateType = Literal["new", "open", "pending reminder", "pending close", "closed", "merged", "removed"]

MAX_NAME_LENGTH = 100
MAX_NOTE_LENGTH = 2000
# The characters str.strip() removes: a name may not start or end with one.
_WHITESPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# The service checks names and notes itself, to report every problem of a state at once in its own words
# (service._check); these annotations only document the same rules.
StateName = Annotated[
    str,
    Meta(
        extra_json_schema={
            "minLength": 1,
            "maxLength": MAX_NAME_LENGTH,
            "pattern": f"^[^{_WHITESPACE}]([\\s\\S]*[^{_WHITESPACE}])?$",
            "description": "Unique in the tenant (case-insensitively), without leading or trailing spaces",
        }
    ),
]
StateNote = Annotated[str, Meta(extra_json_schema={"maxLength": MAX_NOTE_LENGTH})]


class StateIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: StateName
    state_type: StateType
    next_state_id: uuid.UUID | None = None
    ignore_escalation: bool = False
    default_create: bool = False
    default_follow_up: bool = False
    note: StateNote | None = None
    active: bool = True


class StateUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A PUT: the members sent replace the state's; members left out keep their values (seed 003 changes a state
    with just `{"note": ...}`). `null` clears `next_state_id` or `note`."""

    name: StateName | UnsetType = UNSET
    state_type: StateType | UnsetType = UNSET
    next_state_id: uuid.UUID | UnsetType | None = UNSET
    ignore_escalation: bool | UnsetType = UNSET
    default_create: bool | UnsetType = UNSET
    default_follow_up: bool | UnsetType = UNSET
    note: StateNote | UnsetType | None = UNSET
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
