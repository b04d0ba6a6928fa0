"""Built-in sign-in (email and password) and service-account client credentials: the tokens of builtin realms.

Sign-in answers an unknown email, a wrong password and a deactivated user alike (status, body, and the same work:
a password is always verified, against a decoy hash when there is no user), and throttles failures per account and
per client address. A client's secret is 256 random bits, so it is stored as its SHA-256 (a slow hash protects
guessable passwords; nothing guesses 256 bits) and compared in constant time.
"""

from __future__ import annotations

import datetime
import hmac
import re
import secrets
import uuid
from collections.abc import Iterable

from app.auth.issuer import SERVICE_ACCOUNT_PREFIX, IssuedToken, TokenIssuer
from app.db.database import Database
from app.errors import InputValidationFailure, TenantNotFound
from app.ratelimit.limiter import RateLimiter, headers
from app.tenancy.model import RealmConfig, TenantConfig
from app.tenancy.registry import Realm, Tenant, TenantRegistry
from app.user.dto import AcceptInvitationRequest, LoginRequest, LoginResponse, Role, SignedInUser, UserOut
from app.user.errors import InvalidCredentials, InvalidInvitation, SignInUnavailable, TooManySignInAttempts
from app.user.passwords import PasswordHasher
from app.user.repository import ClientRepository, SignInRow, UserRepository
from app.user.roles import RoleNotMapped, realm_roles, scopes
from app.user.service import builtin_realm, token_hash, user_out
from app.user.throttle import LoginThrottle, ThrottleKey

CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# How long an account waits at most after its latest failure (so never locked out for long), and an address.
ACCOUNT_MAX_DELAY_SECONDS = 60.0
ADDRESS_MAX_DELAY_SECONDS = 900.0
# Failures of an account, from anywhere, before the account-wide brake (NIST SP 800-63B: at most 100 consecutive).
ACCOUNT_WIDE_FREE_FAILURES = 100


class ClientRefused(Exception):
    """Client credentials that do not name an active client of the realm with this secret (OAuth invalid_client)."""


class RealmNotFound(Exception):
    """No enabled builtin realm has this name."""


class ProvisioningRefused(Exception):
    """A user or service account that cannot be made as asked; the message says why."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def sole_sign_in_tenant(tenants: Iterable[Tenant]) -> uuid.UUID | None:
    """The tenant users sign in to when a sign-in names none (seed 004's login sends only email and password): the
    one enabled tenant with a builtin realm, if there is exactly one; otherwise None (the tenant must be named)."""
    candidates = [tenant.id for tenant in tenants if tenant.enabled and builtin_realm(tenant.config) is not None]
    return candidates[0] if len(candidates) == 1 else None


class SignInService:
    def __init__(
        self,
        db: Database,
        users: UserRepository,
        clients: ClientRepository,
        registry: TenantRegistry,
        passwords: PasswordHasher,
        issuer: TokenIssuer,
        throttle: LoginThrottle,
        *,
        free_failures_per_account: int,
        free_failures_per_address: int,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._db = db
        self._users = users
        self._clients = clients
        self._registry = registry
        self._passwords = passwords
        self._issuer = issuer
        self._throttle = throttle
        self._free_per_account = free_failures_per_account
        self._free_per_address = free_failures_per_address
        self._limiter = limiter

    async def login(
        self, tenant_header: str | None, request: LoginRequest, address: str
    ) -> tuple[LoginResponse, dict[str, str]]:
        """The token, and the X-RateLimit-* headers of the client address's count (none when limits are off)."""
        realm, counted = await self._counted(tenant_header, request.tenant_id, address)
        tenant_id = realm.tenant.id
        # The failure throttle is the narrower brake on guessing, under the address's rate limit.
        email = request.email.strip().lower()
        # Guessing one account from one address is slowed after a few failures; an attacker elsewhere cannot slow
        # the account's owner down that way, only through the account-wide brake, which takes NIST SP 800-63B's
        # hundred failures (and still never more than a minute after the latest).
        from_here = ThrottleKey(f"account:{email} from:{address}", self._free_per_account, ACCOUNT_MAX_DELAY_SECONDS)
        account = ThrottleKey(f"account:{email}", ACCOUNT_WIDE_FREE_FAILURES, ACCOUNT_MAX_DELAY_SECONDS)
        from_address = ThrottleKey(f"address:{address}", self._free_per_address, ADDRESS_MAX_DELAY_SECONDS)
        keys = [from_here, account, from_address]
        retry_after = await self._throttle.attempt(tenant_id, keys, _now())
        if retry_after is not None:
            raise TooManySignInAttempts(retry_after, counted)
        row = await self._users.for_sign_in(tenant_id, realm.config.name, email)
        matches, rehashed = await self._passwords.verify(row.password_hash if row else None, request.password)
        if row is None or not matches or row.status != "active":
            raise InvalidCredentials(counted)  # counted already
        await self._throttle.succeeded(tenant_id, cleared=[from_here, account], kept=[from_address])
        await self._users.signed_in(tenant_id, row.id, _now(), rehashed)
        return self._signed_in(realm, row), counted

    async def accept_invitation(
        self, tenant_header: str | None, request: AcceptInvitationRequest, address: str
    ) -> tuple[LoginResponse, dict[str, str]]:
        """The invited user's password set, the user active and signed in: the token, as login answers, and the
        X-RateLimit-* headers of the client address's count. An unknown, used, voided or expired invitation is
        401 INVALID_INVITATION (a token is 256 random bits: the address's rate limit is brake enough)."""
        realm, counted = await self._counted(tenant_header, request.tenant_id, address)
        tenant_id = realm.tenant.id
        invitation = token_hash(request.token)
        # The slow hash only for a live invitation: made-up tokens cost a lookup, not 64 MiB of Argon2 each.
        if not await self._users.invitation_pending(tenant_id, realm.config.name, invitation, _now()):
            raise InvalidInvitation(counted)
        password_hash = await self._passwords.hash(request.password)
        row = await self._users.accept_invitation(tenant_id, realm.config.name, invitation, password_hash, _now())
        if row is None:  # accepted, voided or expired meanwhile
            raise InvalidInvitation(counted)
        return self._signed_in(realm, row), counted

    async def _counted(
        self, tenant_header: str | None, tenant_member: uuid.UUID | None, address: str
    ) -> tuple[Realm, dict[str, str]]:
        """The tenant's builtin realm, and the X-RateLimit-* headers of this request's count: a route without a
        token counts by client address against the tenant's default plan (429 past it), before any secret is
        checked."""
        realm = self._builtin_realm_of(self._tenant_id(tenant_header, tenant_member))
        verdict = await self._limiter.admit_address(realm.tenant.id, address) if self._limiter is not None else None
        return realm, headers(verdict) if verdict is not None else {}

    def _signed_in(self, realm: Realm, row: SignInRow) -> LoginResponse:
        """Seed 004's login answer for the user: a token of the builtin realm."""
        role: Role = row.role  # type: ignore[assignment]  # the table's CHECK allows only Role's values
        claims = {"preferred_username": row.email or row.subject, "azp": "ticketing"}
        if row.email:
            claims["email"] = row.email
        if row.name:
            claims["name"] = row.name
        issued = self._issuer.issue(
            realm, row.subject, realm_roles(realm.tenant.config.roles, role), scopes(role), **claims
        )
        return LoginResponse(
            token=issued.token,
            expires_at=issued.expires_at,
            user=SignedInUser(id=row.id, name=row.name, email=row.email, role=role),
        )

    def sole_sign_in_tenant(self) -> uuid.UUID | None:
        return sole_sign_in_tenant(self._registry.tenants())

    def _tenant_id(self, header: str | None, member: uuid.UUID | None) -> uuid.UUID:
        if header is None:
            if member is None:
                raise InputValidationFailure(
                    "The tenant is required", {"x-tenantid": "name the tenant by this header or tenant_id"}
                )
            return member
        if not _CANONICAL_UUID.fullmatch(header):
            raise TenantNotFound()
        tenant_id = uuid.UUID(header)
        if member is not None and member != tenant_id:
            raise InputValidationFailure("The tenant is named twice", {"tenant_id": "differs from x-tenantid"})
        return tenant_id

    def _builtin_realm_of(self, tenant_id: uuid.UUID) -> Realm:
        tenant = self._registry.tenant(tenant_id)
        if tenant is None or not tenant.enabled:
            raise TenantNotFound()
        config = builtin_realm(tenant.config)
        realm = self._registry.builtin_realm(config.name) if config is not None else None
        if realm is None:
            raise SignInUnavailable()
        return realm

    def realm(self, name: str) -> Realm:
        """An enabled tenant's builtin realm by name (its endpoints' path)."""
        realm = self._registry.builtin_realm(name)
        if realm is None or not realm.tenant.enabled:
            raise RealmNotFound(name)
        return realm

    async def client_credentials(self, realm_name: str, client_id: str, secret: str) -> tuple[IssuedToken, str]:
        """A service account's token and the scopes it carries."""
        realm = self.realm(realm_name)
        client = (
            await self._clients.get(realm.tenant.id, realm.config.name, client_id)
            if CLIENT_ID.fullmatch(client_id)
            else None
        )
        presented = token_hash(secret)
        if client is None or client.revoked_at is not None or not hmac.compare_digest(presented, client.secret_hash):
            raise ClientRefused()
        subject = f"{SERVICE_ACCOUNT_PREFIX}{client_id}"
        issued = self._issuer.issue(
            realm,
            subject,
            client.roles,
            client.scopes,
            client_id=client_id,
            azp=client_id,
            preferred_username=subject,
        )
        return issued, " ".join(sorted(set(client.scopes)))


class Provisioning:
    """What `python -m app user` and `python -m app client` do: create or reset a built-in user, create, reset or
    revoke a service account. Works from the tenant's file, without a running service."""

    def __init__(self, db: Database, users: UserRepository, clients: ClientRepository, passwords: PasswordHasher):
        self._db = db
        self._users = users
        self._clients = clients
        self._passwords = passwords

    async def put_user(
        self, tenant: TenantConfig, email: str, role: Role, password: str | None, name: str | None
    ) -> tuple[UserOut, str]:
        """Create the builtin realm's user with this email, or reset its password and role and activate it; the
        user and its password (`password`, or a generated one)."""
        realm = _builtin(tenant)
        try:
            realm_roles(tenant.roles, role)
        except RoleNotMapped as exc:
            raise ProvisioningRefused(f"tenant {tenant.slug}: {exc}") from None
        password = password or secrets.token_urlsafe(12)
        password_hash = await self._passwords.hash(password)
        now = _now()
        async with self._db.transaction():
            existing = await self._users.builtin_by_email(tenant.id, realm.name, email)
            if existing is None:
                row = await self._users.create_builtin(
                    tenant.id,
                    uuid.uuid4(),
                    realm.name,
                    name=name,
                    email=email,
                    role=role,
                    password_hash=password_hash,
                    now=now,
                    actor="cli",
                )
            else:
                updated = await self._users.update(
                    tenant.id,
                    existing.id,
                    name=name if name is not None else existing.name,
                    email=existing.email,
                    role=role,
                    status="active",
                    password_hash=password_hash,
                    now=now,
                    void_invitation=True,
                    end_tokens=True,
                )
                assert updated is not None
                row = updated
        return user_out(row), password

    async def put_client(self, tenant: TenantConfig, client_id: str, roles: list[str], scope: list[str]) -> str:
        """Create the service account, or give it a new secret, roles and scopes; its secret."""
        realm = _builtin(tenant)
        if not CLIENT_ID.fullmatch(client_id):
            raise ValueError(
                "a client id is 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        known = {*tenant.roles.read, *tenant.roles.write, *tenant.roles.admin, *tenant.roles.customer}
        unknown = sorted(set(roles) - known - {tenant.roles.support})
        if unknown:
            raise ProvisioningRefused(f"not roles of tenant {tenant.slug}: {', '.join(unknown)}")
        secret = secrets.token_urlsafe(32)
        await self._clients.put(
            tenant.id,
            realm.name,
            client_id,
            secret_hash=token_hash(secret),
            roles=sorted(set(roles)),
            scopes=sorted(set(scope)),
            now=_now(),
        )
        return secret

    async def revoke_client(self, tenant: TenantConfig, client_id: str) -> bool:
        return await self._clients.revoke(tenant.id, _builtin(tenant).name, client_id, _now())


def _builtin(tenant: TenantConfig) -> RealmConfig:
    realm = builtin_realm(tenant)
    if realm is None:
        raise ValueError(f'tenant {tenant.slug} has no builtin realm (kind = "builtin" in its file)')
    return realm
