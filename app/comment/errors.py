"""Comment errors, in the shape of the contract's "Ticket not found"."""

from __future__ import annotations

from app.errors import AppError

# Echoed ids are cut so a client cannot make us reflect arbitrarily long input.
_MAX_ECHOED_ID = 64


class CommentNotFound(AppError):
    # No code, no status: like seed 002's {"error": true, "message": "Ticket not found (REQ-9999)"}.
    status = 404
    include_status = False

    def __init__(self, comment_id: str) -> None:
        super().__init__(f"Comment not found ({comment_id[:_MAX_ECHOED_ID]})")
