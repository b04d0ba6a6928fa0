"""The users directory: who a tenant's people are, who may still call, and the admin's changes to built-in users.

Every authenticated call passes `admit`: an external realm's user is added on its first call and kept up to date
(name, email, role, last seen) at most once a minute; a deactivated user, an unknown built-in user or a revoked
service account is refused. What a worker learnt is reused for STATUS_TTL_SECONDS, so a deactivation or revocation
made elsewhere takes effect within that time (at once in the worker that made it), well inside any token's lifetime,
and the hot path costs no query for a known caller.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import secrets
import time
import uuid
from collections.abc import Iterable
from typing import Any

import msgspec
from msgspec import UNSET

from app.auth.principal import Principal
from app.db.database import Database
from app.db.errors import UniqueViolation
from app.errors import InputValidationFailure, InvalidToken
from app.idempotency.service import Idempotency, Outcome
from app.tenancy.model import RealmConfig, TenantConfig
from app.tenancy.registry import Tenant, TenantRegistry
from app.user.dto import (
    CreatedUser,
    CreateUserRequest,
    Invitation,
    Role,
    Status,
    UpdateUserRequest,
    UserOut,
    created_user_decoder,
    user_decoder,
)
from app.user.errors import UserExists, UserNotFound
from app.user.passwords import PasswordHasher
from app.user.people import People, people
from app.user.repository import ClientRepository, UserRepository, UserRow
from app.user.roles import RoleNotMapped, directory_role, realm_roles

STATUS_TTL_SECONDS = 15.0
# Callers remembered per worker; past this the memory starts over (each caller then costs one query again).
MAX_REMEMBERED_CALLERS = 100_000
SERVICE_ACCOUNT_PREFIX = "service-account-"
# What an Idempotency-Key's fingerprint has in place of a password.
PASSWORD_SENT = "<a password>"  # noqa: S105 - a marker, not a password
# How long an invitation may be accepted.
INVITATION_LIFETIME = datetime.timedelta(days=7)

_nothing_decoder = msgspec.json.Decoder(None)


def builtin_realm(config: TenantConfig) -> RealmConfig | None:
    return next((realm for realm in config.realms if realm.builtin), None)


def user_out(row: UserRow) -> UserOut:
    return UserOut(
        id=row.id,
        subject=row.subject,
        realm=row.realm,
        name=row.name,
        email=row.email,
        role=row.role,  # type: ignore[arg-type]  # the table's CHECK allows only Role's values
        status=row.status,  # type: ignore[arg-type]
        created_at=row.created_at,
        last_login_at=row.last_login_at,
        last_seen_at=row.last_seen_at,
    )


def like_pattern(q: str) -> str:
    """An ILIKE pattern finding `q` anywhere, its own wildcards taken literally."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def token_hash(token: str) -> str:
    """What is stored of a 256-bit token (an invitation): its SHA-256, since nothing guesses 256 bits."""
    return hashlib.sha256(token.encode()).hexdigest()


def _whole_seconds(moment: datetime.datetime | None) -> int | None:
    return None if moment is None else math.floor(moment.timestamp())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class UserService:
    def __init__(
        self,
        db: Database,
        users: UserRepository,
        clients: ClientRepository,
        registry: TenantRegistry,
        passwords: PasswordHasher,
        keys: Idempotency,
    ) -> None:
        self._db = db
        self._users = users
        self._clients = clients
        self._registry = registry
        self._passwords = passwords
        self._keys = keys
        # (tenant, realm, subject) -> (when it was checked, monotonic; whether it may call; the time, in whole
        # seconds since the epoch, its tokens must be issued at or after, or None).
        self._callers: dict[tuple[uuid.UUID, str, str], tuple[float, bool, int | None]] = {}

    def __deepcopy__(self, memo: dict[int, Any]) -> UserService:
        # Litestar deep-copies middleware arguments (`admit` is bound to this service): one service per process.
        return self

    async def admit(self, principal: Principal) -> None:
        caller = (principal.tenant_id, principal.realm, principal.subject)
        now = time.monotonic()
        known = self._callers.get(caller)
        if known is None or now - known[0] >= STATUS_TTL_SECONDS:
            allowed, valid_after = await self._check(principal)
            if len(self._callers) >= MAX_REMEMBERED_CALLERS:
                self._callers.clear()
            self._callers[caller] = (now, allowed, valid_after)
        else:
            _, allowed, valid_after = known
        # Whole seconds, as `iat` has them: a token issued in the second its credentials changed still counts.
        if valid_after is not None and (principal.issued_at is None or principal.issued_at < valid_after):
            allowed = False
        if not allowed:
            raise InvalidToken()

    async def _check(self, principal: Principal) -> tuple[bool, int | None]:
        """Whether the caller may call, and the second its tokens must be issued at or after (or None)."""
        tenant = self._registry.tenant(principal.tenant_id)
        realm = next((r for r in tenant.config.realms if r.name == principal.realm), None) if tenant else None
        if tenant is None or realm is None:
            return False, None
        if realm.builtin and principal.service_account:
            client = await self._clients.get(
                tenant.id, realm.name, principal.subject.removeprefix(SERVICE_ACCOUNT_PREFIX)
            )
            if client is None or client.revoked_at is not None:
                return False, None
            return True, _whole_seconds(client.tokens_valid_after)
        if realm.builtin:
            user = await self._users.seen_builtin(tenant.id, realm.name, principal.subject, _now())
            if user is None or user.status != "active":
                return False, None
            return True, _whole_seconds(user.tokens_valid_after)
        if principal.service_account:
            # An identity provider's service account is a client, not a person: not in the directory.
            return True, None
        status = await self._users.seen_external(
            tenant.id,
            realm.name,
            principal.subject,
            name=principal.name,
            email=principal.email,
            role=directory_role(tenant, principal.roles),
            now=_now(),
        )
        return status == "active", None

    def _forget(self, tenant_id: uuid.UUID, row: UserRow) -> None:
        self._callers.pop((tenant_id, row.realm, row.subject), None)

    async def people(self, tenant_id: uuid.UUID, subjects: Iterable[str]) -> People:
        """Seed 004's people for these subjects (app/user/people.py)."""
        return await people(self._users, tenant_id, subjects)

    async def page(
        self, principal: Principal, role: Role | None, status: Status | None, q: str | None, page: int, per_page: int
    ) -> tuple[int, list[UserOut]]:
        total, rows = await self._users.page(
            principal.tenant_id,
            role=role,
            status=status,
            pattern=like_pattern(q) if q else None,
            limit=per_page,
            offset=(page - 1) * per_page,
        )
        return total, [user_out(row) for row in rows]

    async def get(self, principal: Principal, user_id: str) -> UserOut:
        return user_out(await self._row(principal.tenant_id, user_id))

    async def _row(self, tenant_id: uuid.UUID, user_id: str) -> UserRow:
        try:
            parsed = uuid.UUID(user_id)
        except ValueError:
            raise UserNotFound(user_id) from None
        row = await self._users.get(tenant_id, parsed)
        if row is None:
            raise UserNotFound(user_id)
        return row

    async def create(
        self, principal: Principal, request: CreateUserRequest, idempotency_key: str | None
    ) -> Outcome[CreatedUser]:
        claim = self._keys.claim(principal, idempotency_key, "create_user", _fingerprinted(request))
        return await self._keys.once(
            principal, claim, lambda: self._create(principal, request), created_user_decoder, _without_token
        )

    async def _create(self, principal: Principal, request: CreateUserRequest) -> CreatedUser:
        tenant = self._tenant(principal)
        realm = builtin_realm(tenant.config)
        if realm is None:
            raise InputValidationFailure(
                "The tenant has no builtin realm", {"body": "users are added to a builtin realm; the tenant has none"}
            )
        _check_role(tenant.config, request.role)
        now = _now()
        invitation = None
        if request.password is UNSET:
            token = secrets.token_urlsafe(32)
            invitation = Invitation(token, now + INVITATION_LIFETIME)
            password_hash = None
        else:
            password_hash = await self._passwords.hash(request.password)
        try:
            async with self._db.transaction():
                row = await self._users.create_builtin(
                    tenant.id,
                    uuid.uuid4(),
                    realm.name,
                    name=request.name,
                    email=request.email,
                    role=request.role,
                    password_hash=password_hash,
                    now=now,
                    actor=principal.subject,
                    invitation=(token_hash(token), invitation.expires_at) if invitation else None,
                )
        except UniqueViolation:
            raise UserExists() from None
        return CreatedUser(**msgspec.structs.asdict(user_out(row)), invitation=invitation or UNSET)

    async def update(
        self, principal: Principal, user_id: str, request: UpdateUserRequest, idempotency_key: str | None
    ) -> Outcome[UserOut]:
        claim = self._keys.claim(principal, idempotency_key, "update_user", user_id, _fingerprinted(request))
        return await self._keys.once(principal, claim, lambda: self._update(principal, user_id, request), user_decoder)

    async def _update(self, principal: Principal, user_id: str, request: UpdateUserRequest) -> UserOut:
        tenant = self._tenant(principal)
        row = await self._row(tenant.id, user_id)
        sent = {name for name in request.__struct_fields__ if getattr(request, name) is not UNSET}
        if not row.builtin and sent - {"status"}:
            raise InputValidationFailure(
                "Invalid user change",
                {name: "comes from the user's identity provider" for name in sorted(sent - {"status"})},
            )
        role = row.role if request.role is UNSET else request.role
        if role != row.role:
            _check_role(tenant.config, role)  # type: ignore[arg-type]
        password_hash = None if request.password is UNSET else await self._passwords.hash(request.password)
        try:
            updated = await self._users.update(
                tenant.id,
                row.id,
                name=row.name if request.name is UNSET else request.name,
                email=row.email if request.email is UNSET else request.email,
                role=role,
                status=row.status if request.status is UNSET else request.status,
                password_hash=password_hash,
                now=_now(),
                # A status, a password or an email an admin sets ends a pending invitation (a deactivated user's
                # invitation could otherwise activate it again; one sent to a mistyped address is no one's to use).
                void_invitation=any(
                    member is not UNSET for member in (request.status, request.password, request.email)
                ),
                # A new role or password ends the tokens issued before: they carry the old role's rights, or were
                # got with the old password.
                end_tokens=role != row.role or request.password is not UNSET,
            )
        except UniqueViolation:
            raise UserExists() from None
        if updated is None:
            raise UserNotFound(user_id)
        self._forget(tenant.id, updated)
        return user_out(updated)

    async def deactivate(self, principal: Principal, user_id: str, idempotency_key: str | None) -> Outcome[None]:
        claim = self._keys.claim(principal, idempotency_key, "deactivate_user", user_id)
        return await self._keys.once(principal, claim, lambda: self._deactivate(principal, user_id), _nothing_decoder)

    async def _deactivate(self, principal: Principal, user_id: str) -> None:
        row = await self._row(principal.tenant_id, user_id)
        updated = await self._users.update(
            principal.tenant_id,
            row.id,
            name=row.name,
            email=row.email,
            role=row.role,
            status="inactive",
            password_hash=None,
            now=_now(),
            void_invitation=True,
        )
        if updated is None:
            raise UserNotFound(user_id)
        self._forget(principal.tenant_id, updated)

    def _tenant(self, principal: Principal) -> Tenant:
        tenant = self._registry.tenant(principal.tenant_id)
        assert tenant is not None  # the authenticator let the principal in for this tenant
        return tenant


def _fingerprinted(request: CreateUserRequest | UpdateUserRequest) -> CreateUserRequest | UpdateUserRequest:
    """The request as an Idempotency-Key's fingerprint covers it: whether a password was sent, not the password (a
    fast hash of it, next to an email anyone may know, could be cracked offline)."""
    return msgspec.structs.replace(request, password=PASSWORD_SENT if request.password is not UNSET else UNSET)


def _without_token(created: CreatedUser) -> CreatedUser:
    """What is kept of the answer for its replays: the invitation without its token."""
    if created.invitation is UNSET:
        return created
    return msgspec.structs.replace(created, invitation=msgspec.structs.replace(created.invitation, token=None))


def _check_role(config: TenantConfig, role: Role) -> None:
    try:
        realm_roles(config.roles, role)
    except RoleNotMapped as exc:
        raise InputValidationFailure("Invalid user", {"role": str(exc)}) from None
