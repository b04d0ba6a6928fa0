"""Ticket errors, with the exact bodies of the contract (seed 002)."""

from __future__ import annotations

import msgspec

from app.errors import AppError, ErrorBody, NamedState

# Echoed ids are cut so a client cannot make us reflect arbitrarily long input.
_MAX_ECHOED_ID = 64


class TicketNotFound(AppError):
    # Contract body: {"error": true, "message": "Ticket not found (REQ-9999)"}, no code, no status.
    status = 404
    include_status = False

    def __init__(self, object_id: str) -> None:
        super().__init__(f"Ticket not found ({object_id[:_MAX_ECHOED_ID]})")


class EtagMismatch(AppError):
    # 400, not 409 or 412: fixed by the contract.
    status = 400
    code = "ETAG_MISMATCH"

    def __init__(self) -> None:
        super().__init__("Ticket might have been updated. Please check changes and resubmit")


class TransitionNotAllowed(AppError):
    status = 400
    code = "TRANSITION_NOT_ALLOWED"

    def __init__(self, current: str | None, target: str, allowed: list[NamedState]) -> None:
        source = f"in {current!r}" if current is not None else "without a state"
        super().__init__(f"A ticket {source} cannot move to {target!r}")
        self.current = current
        self.allowed = allowed

    def body(self) -> ErrorBody:
        return msgspec.structs.replace(super().body(), allowedNextStates=self.allowed)


class TicketVersionNotFound(AppError):
    status = 404
    include_status = False

    def __init__(self, object_id: str, as_of: str) -> None:
        super().__init__(f"Ticket not found ({object_id[:_MAX_ECHOED_ID]} as of {as_of[:_MAX_ECHOED_ID]})")


class PreconditionFailed(AppError):
    # 412, as HTTP has it for a false If-Match (RFC 9110, section 13.1.1); the body is the v2 envelope.
    status = 412
    code = "PRECONDITION_FAILED"

    def __init__(self) -> None:
        super().__init__("The ticket has changed since the etag in If-Match was read; read it again and resubmit")
