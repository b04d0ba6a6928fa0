"""Ticket-type errors, in the v2 envelope."""

from __future__ import annotations

from app.errors import AppError


class TicketTypeNotFound(AppError):
    status = 404
    include_status = False

    def __init__(self, type_id: str) -> None:
        super().__init__(f"Ticket type not found ({type_id[:64]})")
