"""Errors of the users directory and sign-in, in the v2 envelope."""

from __future__ import annotations

from collections.abc import Mapping

from app.errors import WWW_AUTHENTICATE, AppError


class UserNotFound(AppError):
    status = 404
    code = "USER_NOT_FOUND"

    def __init__(self, user_id: str) -> None:
        super().__init__(f"User not found ({user_id[:64]})")


class UserExists(AppError):
    status = 409
    code = "USER_EXISTS"

    def __init__(self) -> None:
        super().__init__("A user of this realm already has this email")


class InvalidCredentials(AppError):
    """One answer for an unknown email, a wrong password and a deactivated user: which it was is not disclosed."""

    status = 401
    code = "INVALID_CREDENTIALS"

    def __init__(self, counted: Mapping[str, str]) -> None:
        # `counted`: the X-RateLimit-* headers of the attempt's count (every answer that counts carries them).
        super().__init__("Invalid email or password", headers={WWW_AUTHENTICATE: 'Bearer realm="ticketing"', **counted})


class InvalidInvitation(AppError):
    """One answer for an unknown, used, voided and expired invitation."""

    status = 401
    code = "INVALID_INVITATION"

    def __init__(self, counted: Mapping[str, str]) -> None:
        super().__init__("The invitation is not valid: unknown, used or expired", headers=dict(counted))


class TooManySignInAttempts(AppError):
    status = 429
    code = "TOO_MANY_ATTEMPTS"

    def __init__(self, retry_after: int, counted: Mapping[str, str]) -> None:
        super().__init__(
            f"Too many failed sign-ins; retry in {retry_after} seconds",
            headers={**counted, "Retry-After": str(retry_after)},
        )


class SignInUnavailable(AppError):
    status = 404
    code = "SIGN_IN_UNAVAILABLE"

    def __init__(self) -> None:
        super().__init__("This tenant has no built-in sign-in")
