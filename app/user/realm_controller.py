"""/realms/{realm}/...: a builtin realm's Keycloak-compatible endpoints: client-credentials tokens, its JWKS and its
OpenID discovery document. Errors here follow OAuth 2.0 (RFC 6749, section 5.2: `error`, `error_description`), which
OAuth clients parse, not the v2 envelope. Not in the v2 API document: the discovery document describes them."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from app.auth.issuer import discovery_document, published_keys
from app.user.dto import TokenResponse
from app.user.signin import ClientRefused, RealmNotFound, SignInService

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _oauth_error(status: int, error: str, description: str) -> Response[Any]:
    return Response({"error": error, "error_description": description}, status_code=status, headers=_NO_STORE)


_REALM_NOT_FOUND = {"error": "Realm does not exist"}


class RealmController(Controller):
    path = "/realms/{realm:str}"
    include_in_schema = False

    @post("/protocol/openid-connect/token", status_code=200)
    async def token(
        self, request: Request[Any, Any, Any], sign_in: NamedDependency[SignInService], realm: FromPath[str]
    ) -> Response[Any]:
        """grant_type=client_credentials, with the client's id and secret as HTTP Basic credentials or form
        members (client_secret_basic, client_secret_post)."""
        if request.content_type[0] != "application/x-www-form-urlencoded":
            return _oauth_error(400, "invalid_request", "send an application/x-www-form-urlencoded body")
        form = await request.form()
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "only grant_type=client_credentials is supported")
        credentials = _basic_credentials(request.headers.get("authorization"))
        if credentials is None:
            client_id, secret = form.get("client_id"), form.get("client_secret")
            if not isinstance(client_id, str) or not isinstance(secret, str):
                return _oauth_error(401, "invalid_client", "client credentials are required")
            credentials = (client_id, secret)
        try:
            issued, scope = await sign_in.client_credentials(realm, *credentials)
        except RealmNotFound:
            return Response(_REALM_NOT_FOUND, status_code=404)
        except ClientRefused:
            return _oauth_error(401, "invalid_client", "Invalid client or Invalid client credentials")
        answer = TokenResponse(
            access_token=issued.token,
            expires_in=issued.lifetime_seconds,
            refresh_expires_in=0,
            token_type="Bearer",  # noqa: S106 (the token type, not a password)
            not_before_policy=0,
            scope=scope,
        )
        return Response(answer, headers=_NO_STORE)

    @get("/protocol/openid-connect/certs")
    async def certs(self, sign_in: NamedDependency[SignInService], realm: FromPath[str]) -> Response[Any]:
        """The realm's public signing keys (JWKS)."""
        try:
            return Response(published_keys(sign_in.realm(realm)))
        except RealmNotFound:
            return Response(_REALM_NOT_FOUND, status_code=404)

    @get("/.well-known/openid-configuration")
    async def discovery(self, sign_in: NamedDependency[SignInService], realm: FromPath[str]) -> Response[Any]:
        """OpenID Connect discovery: the issuer, the token endpoint and the JWKS URL."""
        try:
            return Response(discovery_document(sign_in.realm(realm)))
        except RealmNotFound:
            return Response(_REALM_NOT_FOUND, status_code=404)


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """RFC 6749, section 2.3.1: the client id and secret, form-urlencoded, as HTTP Basic credentials."""
    if authorization is None:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    return (unquote(client_id), unquote(secret)) if colon else None
