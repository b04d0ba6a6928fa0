"""Turns request headers into a Principal, or refuses with 401 / 404.

Order matters and is part of the contract: the token is verified first (401 for anything wrong with it), then the
realm named by `realmname` must be the token's realm (401), then `x-tenantid` must be a UUID equal to the token's
tenant claim and be the realm's tenant, which must be enabled (404 "Tenant not found", seed 002 note 7).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import httpx

from app.auth import jwt
from app.auth.keys import RealmKeySet
from app.auth.principal import AGENT_PERMISSIONS, Permission, Principal
from app.errors import AuthenticationRequired, InputValidationFailure, InvalidToken, RealmRequired, TenantNotFound
from app.tenancy.registry import Realm, TenantRegistry

log = logging.getLogger("app.auth")


_MAX_PRINCIPALS_PER_TOKEN = 8
# What the users directory stores of a token's name and email claims (longer ones are left out); an email address
# is at most 254 characters (RFC 5321's path limit).
MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 254
# uuid.UUID also accepts braces, "urn:uuid:" and missing hyphens; the header must be the plain 8-4-4-4-12 form.
_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class _Verified:
    __slots__ = ("claims", "expires_at", "kid", "principals", "realm")

    def __init__(self, claims: dict[str, Any], realm: Realm, kid: str) -> None:
        self.claims = claims
        self.realm = realm
        self.kid = kid
        self.expires_at: float = claims["exp"]
        # Principals already derived from this token, by (realmname, x-tenantid, issupportrequest) header values.
        self.principals: dict[tuple[str | None, str | None, str | None], Principal] = {}


class Authenticator:
    def __init__(
        self,
        registry: TenantRegistry,
        http: httpx.AsyncClient,
        *,
        leeway_seconds: int,
        cache_size: int,
        jwks_min_refresh_seconds: float,
        jwks_timeout_seconds: float,
    ) -> None:
        self._registry = registry
        self._http = http
        self._leeway = leeway_seconds
        self._cache_size = cache_size
        self._jwks_min_refresh = jwks_min_refresh_seconds
        self._jwks_timeout = jwks_timeout_seconds
        # Exact token -> verified claims. Saves a signature check per request; entries die with the token.
        self._cache: OrderedDict[str, _Verified] = OrderedDict()
        self._cache_generation = -1
        # Each realm's signing keys, by issuer; rebuilt with the registry, keeping fetched keys of unchanged realms.
        self._key_sets: dict[str, RealmKeySet] = {}
        # Rebuilt as the registry changes (parsing inline keys costs milliseconds: not on a request's time); a
        # request that finds the generation moved anyway rebuilds first.
        registry.on_change(self._follow_registry)

    def __deepcopy__(self, memo: dict[int, Any]) -> Authenticator:
        # Litestar deep-copies a router (and its middleware arguments) when registering it; the authenticator and
        # its caches are one process-wide service and must stay shared.
        return self

    async def authenticate(self, headers: Mapping[str, str], *, tenant_from_token: bool = False) -> Principal:
        """With `tenant_from_token` (the v1 surface, whose clients send no tenant headers), an absent realmname or
        x-tenantid is taken from the token (its realm, its tenant claim); one that is sent is checked as in v2."""
        authorization = headers.get("authorization")
        if not authorization:
            raise AuthenticationRequired()
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationRequired()

        verified = await self._verify(token)
        realm = verified.realm
        realm_name = headers.get("realmname")
        tenant_header = headers.get("x-tenantid")
        if tenant_from_token:
            # Filled in before the principal cache is consulted: its entries are keyed by the values checked.
            claimed = verified.claims.get(realm.tenant.config.tenant_claim)
            realm_name = realm_name if realm_name is not None else realm.config.name
            tenant_header = tenant_header if tenant_header is not None or not isinstance(claimed, str) else claimed
        header_values = (realm_name, tenant_header, headers.get("issupportrequest"))
        known = verified.principals.get(header_values)
        if known is not None:
            return known
        if not realm_name:
            raise RealmRequired()
        if realm_name != realm.config.name:
            raise _invalid("realmname header does not name the token's realm")

        tenant_claim = verified.claims.get(realm.tenant.config.tenant_claim)
        if not isinstance(tenant_claim, str):
            raise _invalid("token has no tenant claim")
        tenant_header = tenant_header or ""
        if not _CANONICAL_UUID.fullmatch(tenant_header):
            raise TenantNotFound()
        try:
            requested_tenant = uuid.UUID(tenant_header)
            token_tenant = uuid.UUID(tenant_claim)
        except ValueError:
            raise TenantNotFound() from None
        # A disabled (offboarded) tenant is not found, whoever asks: its rows are kept, but nothing reaches them.
        if requested_tenant != token_tenant or token_tenant != realm.tenant.id or not realm.tenant.enabled:
            raise TenantNotFound()
        principal = self._principal(verified, headers.get("issupportrequest"))
        if len(verified.principals) < _MAX_PRINCIPALS_PER_TOKEN:
            verified.principals[header_values] = principal
        return principal

    async def _verify(self, token: str) -> _Verified:
        if self._cache_generation != self._registry.generation:
            self._follow_registry()
        generation = self._cache_generation
        cached = self._cache.get(token)
        # A cached token stays valid until it expires, unless its key has been withdrawn from the realm since.
        if cached is not None and cached.expires_at + self._leeway > time.time():
            key_set = self._key_sets.get(cached.realm.config.issuer)
            if key_set is not None and key_set.knows(cached.kid):
                return cached
        try:
            unverified = jwt.inspect(token)
            realm = self._registry.realm_for_issuer(unverified.issuer)
            key_set = self._key_sets.get(unverified.issuer)
            if realm is None or key_set is None or unverified.algorithm not in realm.config.algorithms:
                raise jwt.TokenRejected("unknown issuer or algorithm not accepted by the realm")
            key = await key_set.get(unverified.kid)
            if key is None:
                raise jwt.TokenRejected("unknown kid")
            claims = jwt.verify(
                token,
                key,
                unverified.algorithm,
                issuer=realm.config.issuer,
                audience=realm.config.audience,
                leeway_seconds=self._leeway,
            )
        except jwt.TokenRejected as exc:
            raise _invalid(str(exc)) from None
        verified = _Verified(claims, realm, unverified.kid)
        # A reload while the key was fetched may have changed or removed the realm: then the verdict (checked
        # against the realm as it was) holds for this request, but is not kept for the next ones.
        if generation == self._cache_generation == self._registry.generation:
            self._cache[token] = verified
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return verified

    def _follow_registry(self) -> None:
        # Realms or keys may have changed: tokens verified under the old configuration are checked again.
        self._cache.clear()
        self._rebuild_key_sets()
        self._cache_generation = self._registry.generation

    def _rebuild_key_sets(self) -> None:
        key_sets: dict[str, RealmKeySet] = {}
        for realm in self._registry.realms():
            previous = self._key_sets.get(realm.config.issuer)
            if previous is not None and previous.realm == realm.config:
                key_sets[realm.config.issuer] = previous
            else:
                key_sets[realm.config.issuer] = RealmKeySet(
                    realm.config,
                    self._http,
                    min_refresh_seconds=self._jwks_min_refresh,
                    fetch_timeout_seconds=self._jwks_timeout,
                )
        self._key_sets = key_sets

    def _principal(self, verified: _Verified, support_header: str | None) -> Principal:
        claims = verified.claims
        tenant = verified.realm.tenant
        realm_access = claims.get("realm_access")
        raw_roles = realm_access.get("roles") if isinstance(realm_access, dict) else None
        roles = frozenset(r for r in raw_roles if isinstance(r, str)) if isinstance(raw_roles, list) else frozenset()
        scope = claims.get("scope")
        scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
        permissions: set[Permission] = set()
        if roles & tenant.read_roles:
            permissions.add("read")
        if roles & tenant.write_roles:
            permissions.add("write")
        if roles & tenant.admin_roles:
            permissions.add("admin")
        if roles & tenant.customer_roles:
            permissions.add("customer")
        if roles & tenant.comment_roles:
            permissions.add("comment")
        if roles & tenant.delete_roles:
            permissions.add("delete")
        username = claims.get("preferred_username")
        # Keycloak puts the client id in service-account tokens (clientId, or client_id in newer versions).
        client_id = claims.get("client_id") or claims.get("clientId")
        name, email = claims.get("name"), claims.get("email")
        return Principal(
            subject=claims["sub"],
            tenant_id=tenant.id,
            realm=verified.realm.config.name,
            roles=roles,
            scopes=scopes,
            permissions=frozenset(permissions),
            service_account=isinstance(client_id, str),
            support_request=_support_flag(support_header) and tenant.config.roles.support in roles,
            username=username if isinstance(username, str) else None,
            name=name if isinstance(name, str) and 0 < len(name) <= MAX_NAME_LENGTH and name.isprintable() else None,
            email=email
            if isinstance(email, str) and 0 < len(email) <= MAX_EMAIL_LENGTH and email.isprintable()
            else None,
            # Without an agent-level permission a caller reaches only its own tickets, whichever of the customer,
            # comment or delete roles got it in: those roles say what it may do, not what it may see.
            customer_only=not permissions & AGENT_PERMISSIONS,
            client_id=client_id if isinstance(client_id, str) else None,
            issued_at=float(claims["iat"]) if isinstance(claims.get("iat"), int | float) else None,
        )


def _invalid(reason: str) -> InvalidToken:
    log.info("token rejected", extra={"reason": reason})
    return InvalidToken()


def _support_flag(value: str | None) -> bool:
    """The issupportrequest header: absent is false; otherwise true or false in any letter case (the document's
    SUPPORT_FLAG_PATTERN). Blanks around it are HTTP's optional whitespace; an empty value is not a flag."""
    if value is None:
        return False
    lowered = value.strip(" \t").lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise InputValidationFailure("Invalid request headers", {"issupportrequest": "must be true or false"})
