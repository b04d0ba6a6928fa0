"""The 429 answer, in the v2 envelope, with Retry-After and the limit's X-RateLimit-* headers."""

from __future__ import annotations

from app.errors import AppError


class RateLimited(AppError):
    status = 429
    code = "RATE_LIMIT_EXCEEDED"

    def __init__(self, message: str, headers: dict[str, str]) -> None:
        super().__init__(message, headers=headers)
