"""Ticket-state errors, in the v2 envelope (seed 003's wording for a state that is still referenced)."""

from __future__ import annotations

from app.errors import AppError


class TicketStateNotFound(AppError):
    status = 404
    include_status = False

    def __init__(self, state_id: str) -> None:
        super().__init__(f"Ticket state not found ({state_id[:64]})")


class StateHasReferences(AppError):
    status = 409
    code = "STATE_HAS_REFERENCES"

    def __init__(self) -> None:
        super().__init__("Can't delete, object has references.")
