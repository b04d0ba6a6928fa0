"""The issuer of builtin realms: this service signs their tokens (sign-in, client credentials) and publishes their
keys (JWKS) and OpenID discovery document, so other services verify them like any identity provider's.

Tokens are shaped like Keycloak's access tokens, so the authenticator verifies them by the same code as an external
realm's: against the realm's published keys, with its issuer and audience. The private key is the one whose kid the
realm's configuration names as signing key (the newest after a rotation), read from the data folder or the
configured key file once per process.
"""

from __future__ import annotations

import datetime
import logging
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from app.auth import jwt
from app.errors import ServiceUnavailable
from app.tenancy.devkeys import builtin_signing_pem, public_jwk
from app.tenancy.registry import Realm

log = logging.getLogger("app.auth.issuer")

# Keycloak's claim for a service account's client (also how the authenticator tells service accounts apart).
CLIENT_ID_CLAIM = "client_id"
SERVICE_ACCOUNT_PREFIX = "service-account-"


class IssuedToken(msgspec.Struct, frozen=True):
    token: str
    expires_at: datetime.datetime
    lifetime_seconds: int


class SigningKeyUnavailable(ServiceUnavailable):
    def __init__(self) -> None:
        super().__init__("The realm cannot issue tokens right now; retry later")


class TokenIssuer:
    def __init__(self, data_dir: Path, lifetime_seconds: int) -> None:
        self._data_dir = data_dir
        self.lifetime_seconds = lifetime_seconds
        self._keys: dict[tuple[str, str], jwt.SigningKey] = {}

    def issue(
        self, realm: Realm, subject: str, roles: Iterable[str], scopes: Iterable[str], **claims: str
    ) -> IssuedToken:
        """A token of the builtin realm for `subject`, carrying the realm roles and scopes, plus `claims`
        (preferred_username, name, email, client_id, azp)."""
        config = realm.config
        kid = config.signing_kid
        if not config.builtin or kid is None or not config.algorithms:
            raise ValueError(f"realm {config.name} does not issue tokens")
        now = int(time.time())
        expires = now + self.lifetime_seconds
        payload: dict[str, Any] = {
            "iss": config.issuer,
            "aud": config.audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": expires,
            "jti": str(uuid.uuid4()),
            "typ": "Bearer",
            "scope": " ".join(sorted(set(scopes))),
            "realm_access": {"roles": sorted(set(roles))},
            realm.tenant.config.tenant_claim: str(realm.tenant.id),
            **claims,
        }
        algorithm = _algorithm(config.jwks, kid)
        token = jwt.sign(payload, self._signing_key(realm, kid, algorithm), kid, algorithm)
        return IssuedToken(token, datetime.datetime.fromtimestamp(expires, datetime.UTC), self.lifetime_seconds)

    def _signing_key(self, realm: Realm, kid: str, algorithm: str) -> jwt.SigningKey:
        cached = self._keys.get((realm.config.issuer, kid))
        if cached is not None:
            return cached
        config = realm.config
        pem: str | None
        if config.private_key_file is not None:
            try:
                pem = Path(config.private_key_file).read_text(encoding="utf-8")
            except OSError as exc:
                log.error("cannot read a builtin realm's key file", extra={"realm": config.name, "reason": str(exc)})
                raise SigningKeyUnavailable() from None
            if public_jwk(pem)["kid"] != kid:
                pem = None
        else:
            pem = builtin_signing_pem(self._data_dir, realm.tenant.config.slug, config.name, kid)
        if pem is None:
            # Another host rotated the key, or this one's data folder is not the one the tenants were synced from.
            log.error("a builtin realm's signing key is not in this process's reach", extra={"realm": config.name})
            raise SigningKeyUnavailable()
        key = jwt.signing_key(pem, algorithm)
        self._keys[(config.issuer, kid)] = key
        return key


def _algorithm(jwks: dict[str, Any] | None, kid: str) -> str:
    for key in (jwks or {}).get("keys", []):
        if key.get("kid") == kid:
            return str(key["alg"])
    raise ValueError(f"no published key {kid}")


def discovery_document(realm: Realm) -> dict[str, Any]:
    """OpenID Connect Discovery 1.0 metadata of the realm, with Keycloak's endpoint paths under its issuer."""
    issuer = realm.config.issuer
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/protocol/openid-connect/token",
        "jwks_uri": f"{issuer}/protocol/openid-connect/certs",
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(realm.config.algorithms),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "name", "email", "preferred_username", "scope"],
    }


def published_keys(realm: Realm) -> dict[str, Any]:
    """The realm's JWKS: the signing key and, after a rotation, the previous one."""
    return {"keys": list((realm.config.jwks or {}).get("keys", []))}
