"""The v1 session cookie (seeds 000/001 show `Cookie: session=...`) and its CSRF protection.

A v1 sign-in sets `session`, the Bearer token itself (HttpOnly, Secure, SameSite=Strict, for /api/v1 only, expiring
with the token), and `csrf_token`, which the page's own scripts can read (Path=/, so that a page anywhere on the
service's origin sees it; it authenticates nothing by itself). A v1 request without an Authorization header is
authenticated by the session cookie; if it writes (anything but GET, HEAD, OPTIONS), it must also send the
`X-CSRF-Token` header with the csrf_token cookie's value: another site can make a browser send the cookie, but
cannot read it to send the header (the double-submit pattern, OWASP's CSRF cheat sheet). The value is derived from
the session, so a csrf_token planted from elsewhere does not match another session. A request with an Authorization
header is not cookie-authenticated, and needs no CSRF token: browsers never add that header on their own. Sessions
are same-origin: CORS never allows credentials (app/tenancy/cors.py), so no other origin's page gets to read an
answer to a cookie-authenticated request.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac

from litestar.datastructures import Cookie

from app.errors import AppError

SESSION_COOKIE = "session"
CSRF_COOKIE = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SESSION_PATH = "/api/v1"
CSRF_PATH = "/"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfTokenInvalid(AppError):
    status = 403
    code = "CSRF_TOKEN_INVALID"

    def __init__(self) -> None:
        super().__init__(
            f"A write authenticated by the session cookie needs the {CSRF_HEADER} header with the {CSRF_COOKIE} "
            "cookie's value"
        )


def csrf_token(session: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(b"csrf:" + session.encode()).digest()).rstrip(b"=").decode()


def session_cookies(token: str, expires_at: datetime.datetime) -> list[Cookie]:
    """The cookies a v1 sign-in sets: the session and its CSRF token, both ending with the token."""
    max_age = max(0, int((expires_at - datetime.datetime.now(datetime.UTC)).total_seconds()))
    return [
        Cookie(key=name, value=value, path=path, max_age=max_age, secure=True, samesite="strict", httponly=httponly)
        for name, value, path, httponly in (
            (SESSION_COOKIE, token, SESSION_PATH, True),
            (CSRF_COOKIE, csrf_token(token), CSRF_PATH, False),
        )
    ]


def session_from_cookies(cookie_headers: list[str]) -> str | None:
    """The session cookie's value, if the request has one: the first `session` pair of its Cookie headers (a
    browser sends the cookie of the longest path first, so ours, for /api/v1, before another application's
    `session` for /), each pair read on its own, so that a malformed neighbour does not hide it (RFC 6265, 5.4)."""
    for header in cookie_headers:
        for pair in header.split(";"):
            name, separator, value = pair.strip().partition("=")
            if separator and name.strip() == SESSION_COOKIE:
                value = value.strip().removeprefix('"').removesuffix('"')
                if value:
                    return value
    return None


def check_csrf(method: str, session: str, header: str | None) -> None:
    """A cookie-authenticated write must carry the session's CSRF token."""
    if method in SAFE_METHODS:
        return
    if header is None or not hmac.compare_digest(header.encode(), csrf_token(session).encode()):
        raise CsrfTokenInvalid()
