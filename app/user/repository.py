"""SQL for users, service accounts, user events and failed sign-ins. tenant_id is an argument of every method.

Times are passed in by the service (Citus refuses volatile functions in an UPDATE of a distributed table, and the
once-a-minute rule for last_seen_at compares them); ids come from the application too.
"""

from __future__ import annotations

import datetime
import uuid

import msgspec

from app.db.database import Database, select_list


class UserRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    subject: str
    realm: str
    name: str | None
    email: str | None
    role: str
    status: str
    created_at: datetime.datetime
    last_login_at: datetime.datetime | None
    last_seen_at: datetime.datetime | None
    builtin: bool


class SignInRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    subject: str
    name: str | None
    email: str | None
    role: str
    status: str
    password_hash: str | None


class ClientRow(msgspec.Struct, frozen=True):
    client_id: str
    secret_hash: str
    roles: list[str]
    scopes: list[str]
    revoked_at: datetime.datetime | None
    # Its tokens issued before this are refused (it was given a new secret since); None: none are.
    tokens_valid_after: datetime.datetime | None


class BuiltinStatusRow(msgspec.Struct, frozen=True):
    status: str
    tokens_valid_after: datetime.datetime | None


class FailureRow(msgspec.Struct, frozen=True):
    throttle_key: str
    failures: int
    last_failure_at: datetime.datetime


_USER = select_list(UserRow)
_SIGN_IN = select_list(SignInRow)
_CLIENT = select_list(ClientRow)
_FAILURE = select_list(FailureRow)

# $1 tenant, $2 role, $3 status, $4 ILIKE pattern over name and email (each NULL: no filter).
_FILTER = """tenant_id = $1 AND ($2::text IS NULL OR role = $2) AND ($3::text IS NULL OR status = $3)
   AND ($4::text IS NULL OR name ILIKE $4 OR email ILIKE $4)"""

# A built-in user and its user.created event. $1 tenant, $2 id, $3 realm, $4 name, $5 email, $6 role,
# $7 password hash, $8 now, $9 event id, $10 actor, $11 subject (the id as text), $12 status, $13 invitation hash,
# $14 its expiry (an invited user has no password and is inactive until it accepts).
CREATE_BUILTIN = f"""
WITH created AS (
    INSERT INTO app_user (tenant_id, id, realm, subject, builtin, name, email, role, status, password_hash,
                          created_at, updated_at, invitation_hash, invitation_expires_at)
    VALUES ($1, $2, $3, $11, true, $4, $5, $6, $12, $7, $8, $8, $13, $14)
 RETURNING {_USER}
), event AS (
    INSERT INTO user_event (tenant_id, id, user_id, kind, actor, created_at)
    SELECT $1, $9, created.id, 'user.created', $10, $8 FROM created
)
SELECT {_USER} FROM created
"""

# An external realm's user on a call: added on the first (with its user.created event), its name, email, role and
# last_seen_at brought up to date at most once a minute ($9: a minute before now); its status either way.
# $1 tenant, $2 new id, $3 realm, $4 subject, $5 name, $6 email, $7 role, $8 now, $9 stale before, $10 event id.
SEEN_EXTERNAL = """
WITH upserted AS (
    INSERT INTO app_user AS u (tenant_id, id, realm, subject, builtin, name, email, role, status, created_at,
                               updated_at, last_seen_at)
    VALUES ($1, $2, $3, $4, false, $5, $6, $7, 'active', $8, $8, $8)
    ON CONFLICT (tenant_id, realm, subject) DO UPDATE
       SET last_seen_at = excluded.last_seen_at, name = excluded.name, email = excluded.email, role = excluded.role
     WHERE u.last_seen_at IS NULL OR u.last_seen_at < $9
 RETURNING u.id, u.status
), event AS (
    INSERT INTO user_event (tenant_id, id, user_id, kind, actor, created_at)
    SELECT $1, $10, upserted.id, 'user.created', $4, $8 FROM upserted WHERE upserted.id = $2
)
SELECT status FROM upserted
UNION ALL
SELECT status FROM app_user
 WHERE tenant_id = $1 AND realm = $3 AND subject = $4 AND NOT EXISTS (SELECT 1 FROM upserted)
"""

# A built-in user on a call: last_seen_at moved at most once a minute; its status, or nothing for an unknown user.
# $1 tenant, $2 realm, $3 subject, $4 now, $5 stale before.
SEEN_BUILTIN = """
WITH seen AS (
    UPDATE app_user SET last_seen_at = $4
     WHERE tenant_id = $1 AND realm = $2 AND subject = $3 AND builtin
       AND (last_seen_at IS NULL OR last_seen_at < $5)
 RETURNING status, tokens_valid_after
)
SELECT status, tokens_valid_after FROM seen
UNION ALL
SELECT status, tokens_valid_after FROM app_user
 WHERE tenant_id = $1 AND realm = $2 AND subject = $3 AND builtin AND NOT EXISTS (SELECT 1 FROM seen)
"""


class UserRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def page(
        self,
        tenant_id: uuid.UUID,
        *,
        role: str | None,
        status: str | None,
        pattern: str | None,
        limit: int,
        offset: int,
    ) -> tuple[int, list[UserRow]]:
        """The total of matching users and one page of them, oldest first."""
        total: int = await self._db.fetch_value(
            f"SELECT count(*) FROM app_user WHERE {_FILTER}", tenant_id, role, status, pattern
        )
        rows = await self._db.fetch_all(
            UserRow,
            f"SELECT {_USER} FROM app_user WHERE {_FILTER} ORDER BY created_at, id LIMIT $5 OFFSET $6",
            tenant_id,
            role,
            status,
            pattern,
            limit,
            offset,
        )
        return total, rows

    async def get(self, tenant_id: uuid.UUID, user_id: uuid.UUID) -> UserRow | None:
        return await self._db.fetch_one(
            UserRow, f"SELECT {_USER} FROM app_user WHERE tenant_id = $1 AND id = $2", tenant_id, user_id
        )

    async def by_subjects(self, tenant_id: uuid.UUID, subjects: list[str]) -> list[UserRow]:
        """The users with these subjects, in any realm of the tenant."""
        return await self._db.fetch_all(
            UserRow,
            f"SELECT {_USER} FROM app_user WHERE tenant_id = $1 AND subject = ANY($2::text[])",
            tenant_id,
            subjects,
        )

    async def builtin_by_email(self, tenant_id: uuid.UUID, realm: str, email: str) -> UserRow | None:
        return await self._db.fetch_one(
            UserRow,
            f"SELECT {_USER} FROM app_user WHERE tenant_id = $1 AND realm = $2 AND builtin AND lower(email) = "
            "lower($3)",
            tenant_id,
            realm,
            email,
        )

    async def for_sign_in(self, tenant_id: uuid.UUID, realm: str, email: str) -> SignInRow | None:
        return await self._db.fetch_one(
            SignInRow,
            f"SELECT {_SIGN_IN} FROM app_user WHERE tenant_id = $1 AND realm = $2 AND builtin AND lower(email) = "
            "lower($3)",
            tenant_id,
            realm,
            email,
        )

    async def create_builtin(
        self,
        tenant_id: uuid.UUID,
        user_id: uuid.UUID,
        realm: str,
        *,
        name: str | None,
        email: str,
        role: str,
        password_hash: str | None,
        now: datetime.datetime,
        actor: str,
        invitation: tuple[str, datetime.datetime] | None = None,
    ) -> UserRow:
        """The new user, with its user.created event (raises UniqueViolation when the email is taken); with an
        `invitation` (the token's hash and expiry) instead of a password, inactive until it is accepted."""
        row = await self._db.fetch_one(
            UserRow,
            CREATE_BUILTIN,
            tenant_id,
            user_id,
            realm,
            name,
            email,
            role,
            password_hash,
            now,
            uuid.uuid4(),
            actor,
            str(user_id),
            "inactive" if invitation else "active",
            invitation[0] if invitation else None,
            invitation[1] if invitation else None,
        )
        assert row is not None
        return row

    async def update(
        self,
        tenant_id: uuid.UUID,
        user_id: uuid.UUID,
        *,
        name: str | None,
        email: str | None,
        role: str,
        status: str,
        password_hash: str | None,
        now: datetime.datetime,
        void_invitation: bool,
        end_tokens: bool = False,
    ) -> UserRow | None:
        """Set the user's members (a None password_hash keeps the stored one; `void_invitation` ends a pending
        invitation; `end_tokens` refuses the tokens issued before `now`); None when there is no such user."""
        return await self._db.fetch_one(
            UserRow,
            f"""UPDATE app_user
                   SET name = $3, email = $4, role = $5, status = $6,
                       password_hash = coalesce($7, password_hash), updated_at = $8,
                       invitation_hash = CASE WHEN $9 THEN NULL ELSE invitation_hash END,
                       invitation_expires_at = CASE WHEN $9 THEN NULL ELSE invitation_expires_at END,
                       tokens_valid_after = coalesce($10, tokens_valid_after)
                 WHERE tenant_id = $1 AND id = $2
             RETURNING {_USER}""",
            tenant_id,
            user_id,
            name,
            email,
            role,
            status,
            password_hash,
            now,
            void_invitation,
            now if end_tokens else None,
        )

    async def invitation_pending(
        self, tenant_id: uuid.UUID, realm: str, invitation_hash: str, now: datetime.datetime
    ) -> bool:
        """Whether a user of the realm has an unexpired invitation with this hash."""
        found = await self._db.fetch_value(
            "SELECT true FROM app_user WHERE tenant_id = $1 AND realm = $2 AND builtin AND invitation_hash = $3 "
            "AND invitation_expires_at > $4",
            tenant_id,
            realm,
            invitation_hash,
            now,
        )
        return found is not None

    async def accept_invitation(
        self, tenant_id: uuid.UUID, realm: str, invitation_hash: str, password_hash: str, now: datetime.datetime
    ) -> SignInRow | None:
        """The invited user, now active with this password and signed in; None when no user of the realm has an
        unexpired invitation with this hash (unknown, used, voided or expired)."""
        return await self._db.fetch_one(
            SignInRow,
            f"""UPDATE app_user
                   SET password_hash = $4, status = 'active', invitation_hash = NULL, invitation_expires_at = NULL,
                       updated_at = $5, last_login_at = $5, last_seen_at = $5
                 WHERE tenant_id = $1 AND realm = $2 AND builtin AND invitation_hash = $3
                   AND invitation_expires_at > $5
             RETURNING {_SIGN_IN}""",
            tenant_id,
            realm,
            invitation_hash,
            password_hash,
            now,
        )

    async def signed_in(
        self, tenant_id: uuid.UUID, user_id: uuid.UUID, now: datetime.datetime, rehashed: str | None
    ) -> None:
        """Record a sign-in; `rehashed` replaces the stored hash when its parameters were out of date."""
        await self._db.execute(
            """UPDATE app_user SET last_login_at = $3, last_seen_at = $3, password_hash = coalesce($4, password_hash)
                WHERE tenant_id = $1 AND id = $2""",
            tenant_id,
            user_id,
            now,
            rehashed,
        )

    async def seen_external(
        self,
        tenant_id: uuid.UUID,
        realm: str,
        subject: str,
        *,
        name: str | None,
        email: str | None,
        role: str,
        now: datetime.datetime,
    ) -> str | None:
        """The user's status after adding it (first call) or bringing it up to date (at most once a minute); None
        only if the tenant's rows were purged meanwhile."""
        arguments = (tenant_id, realm, subject, name, email, role, now, now - datetime.timedelta(minutes=1))
        status: str | None = await self._seen_external(*arguments)
        if status is None:
            # The first calls of a new user raced (two workers, or two requests of one): ours waited for the other's
            # insert, its DO UPDATE was skipped (seen within the minute) and the fallback SELECT still read the
            # snapshot from before that insert. A new statement sees the committed row.
            status = await self._seen_external(*arguments)
        return status

    async def _seen_external(
        self,
        tenant_id: uuid.UUID,
        realm: str,
        subject: str,
        name: str | None,
        email: str | None,
        role: str,
        now: datetime.datetime,
        stale_before: datetime.datetime,
    ) -> str | None:
        status: str | None = await self._db.fetch_value(
            SEEN_EXTERNAL, tenant_id, uuid.uuid4(), realm, subject, name, email, role, now, stale_before, uuid.uuid4()
        )
        return status

    async def seen_builtin(
        self, tenant_id: uuid.UUID, realm: str, subject: str, now: datetime.datetime
    ) -> BuiltinStatusRow | None:
        """The built-in user's status and since when its tokens count (None: no such user), last_seen_at moved at
        most once a minute."""
        return await self._db.fetch_one(
            BuiltinStatusRow, SEEN_BUILTIN, tenant_id, realm, subject, now, now - datetime.timedelta(minutes=1)
        )

    async def events(self, tenant_id: uuid.UUID, user_id: uuid.UUID) -> list[str]:
        """The kinds of the user's events, oldest first."""
        return await self._db.fetch_column(
            "SELECT kind FROM user_event WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at, id",
            tenant_id,
            user_id,
        )

    async def purge_tenant(self, tenant_id: uuid.UUID) -> dict[str, int]:
        """Delete all of a tenant's users, service accounts, user events and failed sign-ins; rows removed."""
        return {
            "user_event": await self._db.execute("DELETE FROM user_event WHERE tenant_id = $1", tenant_id),
            "app_user": await self._db.execute("DELETE FROM app_user WHERE tenant_id = $1", tenant_id),
            "service_client": await self._db.execute("DELETE FROM service_client WHERE tenant_id = $1", tenant_id),
            "login_failure": await self._db.execute("DELETE FROM login_failure WHERE tenant_id = $1", tenant_id),
        }


class ClientRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, tenant_id: uuid.UUID, realm: str, client_id: str) -> ClientRow | None:
        return await self._db.fetch_one(
            ClientRow,
            f"SELECT {_CLIENT} FROM service_client WHERE tenant_id = $1 AND realm = $2 AND client_id = $3",
            tenant_id,
            realm,
            client_id,
        )

    async def put(
        self,
        tenant_id: uuid.UUID,
        realm: str,
        client_id: str,
        *,
        secret_hash: str,
        roles: list[str],
        scopes: list[str],
        now: datetime.datetime,
    ) -> None:
        """Create the client, or give an existing one a new secret, roles and scopes (and un-revoke it): the tokens
        it was issued before are refused from `now` on (a leaked secret is replaced, a revoked token stays dead)."""
        await self._db.execute(
            """INSERT INTO service_client (tenant_id, realm, client_id, secret_hash, roles, scopes, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (tenant_id, realm, client_id) DO UPDATE
                  SET secret_hash = excluded.secret_hash, roles = excluded.roles, scopes = excluded.scopes,
                      revoked_at = NULL, tokens_valid_after = excluded.created_at""",
            tenant_id,
            realm,
            client_id,
            secret_hash,
            roles,
            scopes,
            now,
        )

    async def revoke(self, tenant_id: uuid.UUID, realm: str, client_id: str, now: datetime.datetime) -> bool:
        """Revoke the client; whether there was one (revoked already or not)."""
        changed = await self._db.execute(
            """UPDATE service_client SET revoked_at = coalesce(revoked_at, $4)
                WHERE tenant_id = $1 AND realm = $2 AND client_id = $3""",
            tenant_id,
            realm,
            client_id,
            now,
        )
        return changed == 1


class LoginFailureRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def locked(self, tenant_id: uuid.UUID, keys: list[str], now: datetime.datetime) -> list[FailureRow]:
        """The keys' counts, each row made if missing and locked until the transaction ends (in key order, so that
        attempts under overlapping keys cannot deadlock): the attempts under a key take their turns."""
        await self._db.execute(
            """INSERT INTO login_failure (tenant_id, throttle_key, failures, last_failure_at)
               SELECT $1, key, 0, $3 FROM unnest($2::text[]) AS key
               ON CONFLICT (tenant_id, throttle_key) DO NOTHING""",
            tenant_id,
            keys,
            now,
        )
        return await self._db.fetch_all(
            FailureRow,
            f"""SELECT {_FAILURE} FROM login_failure WHERE tenant_id = $1 AND throttle_key = ANY($2::text[])
                 ORDER BY throttle_key FOR UPDATE""",
            tenant_id,
            keys,
        )

    async def record(
        self, tenant_id: uuid.UUID, keys: list[str], now: datetime.datetime, forget_before: datetime.datetime
    ) -> None:
        """Count one more failure under each (existing) key; a count whose last failure is older than
        `forget_before` starts again from one."""
        await self._db.execute(
            """UPDATE login_failure
                  SET failures = CASE WHEN last_failure_at < $4 THEN 1 ELSE failures + 1 END, last_failure_at = $3
                WHERE tenant_id = $1 AND throttle_key = ANY($2::text[])""",
            tenant_id,
            keys,
            now,
            forget_before,
        )

    async def uncount(self, tenant_id: uuid.UUID, key: str) -> None:
        """Take back one failure counted in advance (the attempt succeeded)."""
        await self._db.execute(
            "UPDATE login_failure SET failures = greatest(failures - 1, 0) WHERE tenant_id = $1 AND throttle_key = $2",
            tenant_id,
            key,
        )

    async def forget(self, tenant_id: uuid.UUID, key: str) -> None:
        await self._db.execute("DELETE FROM login_failure WHERE tenant_id = $1 AND throttle_key = $2", tenant_id, key)

    async def forget_quiet(self, tenant_id: uuid.UUID, quiet_since: datetime.datetime) -> int:
        """Delete the tenant's counts whose latest failure is older than `quiet_since` (forgotten already)."""
        return await self._db.execute(
            "DELETE FROM login_failure WHERE tenant_id = $1 AND last_failure_at < $2", tenant_id, quiet_since
        )
