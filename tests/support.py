"""Test helpers: key pairs, tenant files and tokens, built the way a real identity provider would build them."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.auth import jwt
from app.db.database import Database
from app.tenancy import files
from app.tenancy.devkeys import generate_private_pem, public_jwk
from app.tenancy.model import TenantConfig
from app.tenancy.repository import TenantRepository
from app.tenancy.service import TenantService

AUDIENCE = "ticketing-api"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class SigningKey:
    algorithm: str
    private_pem: str = ""
    jwk: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.private_pem = generate_private_pem(self.algorithm)
        self.jwk = public_jwk(self.private_pem)

    @property
    def kid(self) -> str:
        return str(self.jwk["kid"])

    def public_pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        private = serialization.load_pem_private_key(self.private_pem.encode(), password=None)
        return (
            private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )


@dataclass
class RealmSpec:
    name: str
    issuer: str
    key: SigningKey
    audience: str = AUDIENCE
    jwks_url: str | None = None


@dataclass
class TenantSpec:
    id: uuid.UUID
    slug: str
    realms: list[RealmSpec]
    roles: dict[str, Any] = field(
        default_factory=lambda: {
            "read": ["viewer", "agent", "admin"],
            "write": ["agent", "admin"],
            "admin": ["admin"],
            "support": "support",
        }
    )
    tenant_claim: str = "tenant_id"
    ticket_types: list[str] = field(default_factory=lambda: ["request", "facility-request"])

    def toml(self) -> str:
        def quoted(values: list[str]) -> str:
            return "[" + ", ".join(json.dumps(v) for v in values) + "]"

        lines = [
            f'id = "{self.id}"',
            f'slug = "{self.slug}"',
            f'name = "Tenant {self.slug}"',
            f'tenant_claim = "{self.tenant_claim}"',
            f"ticket_types = {quoted(self.ticket_types)}",
            "[roles]",
            f"read = {quoted(self.roles['read'])}",
            f"write = {quoted(self.roles['write'])}",
            f"admin = {quoted(self.roles['admin'])}",
            f'support = "{self.roles["support"]}"',
        ]
        for realm in self.realms:
            lines += [
                "[[realms]]",
                f'name = "{realm.name}"',
                f'issuer = "{realm.issuer}"',
                f'audience = "{realm.audience}"',
                f'algorithms = ["{realm.key.algorithm}"]',
                f'keys = {{ jwks_url = "{realm.jwks_url}" }}'
                if realm.jwks_url
                else f"keys = {{ jwks = {{ keys = [ {_inline_table(realm.key.jwk)} ] }} }}",
            ]
        return "\n".join(lines) + "\n"

    def realm(self, name: str | None = None) -> RealmSpec:
        return next(r for r in self.realms if name in (None, r.name))


def _inline_table(data: dict[str, Any]) -> str:
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in data.items()) + " }"


def write_tenants(directory: Path, tenants: list[TenantSpec]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for tenant in tenants:
        (directory / f"{tenant.slug}.toml").write_text(tenant.toml())
    return directory


def claims_for(
    tenant: TenantSpec,
    realm: RealmSpec,
    *,
    roles: list[str] | None = None,
    scope: str = "tickets:read tickets:write",
    subject: str = "user-1",
    ttl: int = 600,
    **extra: Any,
) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": realm.issuer,
        "aud": realm.audience,
        "sub": subject,
        "iat": now,
        "exp": now + ttl,
        "jti": str(uuid.uuid4()),
        "scope": scope,
        "realm_access": {"roles": ["agent"] if roles is None else roles},
        tenant.tenant_claim: str(tenant.id),
    }
    claims.update(extra)
    return claims


def sign(claims: dict[str, Any], key: SigningKey, kid: str | None = None) -> str:
    return jwt.sign(claims, key.private_pem, kid or key.kid, key.algorithm)


def unsigned_token(claims: dict[str, Any], kid: str) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": kid}
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}."


def hs256_with_public_key(claims: dict[str, Any], key: SigningKey) -> str:
    """The classic algorithm-confusion forgery: HMAC keyed with the realm's (public) verification key."""
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = hmac.new(key.public_pem().encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def tamper(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


def load_tenant_files(tenants_dir: Path, data_dir: Path) -> list[TenantConfig]:
    """Tenant files checked the way the service checks them (realm keys by the JWT module)."""
    return files.load_tenant_files(tenants_dir, data_dir, jwt.signing_key_problem)


def load_tenant_file(path: Path, data_dir: Path) -> TenantConfig:
    return files.load_tenant_file(path, data_dir, jwt.signing_key_problem)


async def sync_tenants(dsn: str, configs: list[TenantConfig]) -> list[str]:
    """What `python -m app tenants sync` does to the tenant table: returns the slugs that changed."""
    db = Database(dsn, min_size=1, max_size=1)
    await db.open()
    try:
        return await TenantService(db, TenantRepository(db)).sync(configs)
    finally:
        await db.close()


@functools.cache
def _private_key(private_pem: str) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(private_pem.encode(), password=None)


def pyjwt_sign(claims: dict[str, Any], key: SigningKey, kid: str | None = None, algorithm: str | None = None) -> str:
    """A token signed by PyJWT, an independent JOSE implementation, with the private key parsed once: about 1 ms
    where `sign` (python-jose, which parses and checks the PEM on every call) takes about 40 ms for RSA."""
    import jwt as pyjwt

    return pyjwt.encode(
        claims, _private_key(key.private_pem), algorithm=algorithm or key.algorithm, headers={"kid": kid or key.kid}
    )
