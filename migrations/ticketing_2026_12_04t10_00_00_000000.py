"""Users and service accounts: the users directory, built-in sign-in, client credentials, and user events.

`app_user` is every person a tenant knows: users of its built-in realm (created by an admin or `python -m app user`,
with an Argon2id `password_hash`) and users of external realms, added on their first authenticated call (name and
email from the token's claims). `subject` is the token's `sub` (for built-in users their own id), unique per realm;
an email signs in to one built-in user per realm. `last_seen_at` moves at most once a minute per user.
`service_client` holds a built-in realm's service accounts: the SHA-256 of a generated secret, the realm roles and
scopes its tokens carry, and when it was revoked. `user_event` records `user.created` (and later events) in the
transaction that made the change, for the webhooks to fan out from. `login_failure` counts failed sign-ins per
account and per client address, for the sign-in throttle.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.db.migration_steps import run_ddl

ID = "2026-12-04T10:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "users, service accounts, user events, sign-in throttle"

STATEMENTS = [
    """
    CREATE TABLE app_user (
        tenant_id     uuid NOT NULL,
        id            uuid NOT NULL,
        realm         text NOT NULL,
        subject       text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
        builtin       boolean NOT NULL,
        name          text CHECK (length(name) <= 200),
        email         text CHECK (length(email) <= 254),
        role          text NOT NULL CHECK (role IN ('admin', 'agent', 'customer')),
        status        text NOT NULL CHECK (status IN ('active', 'inactive')),
        password_hash text,
        created_at    timestamptz NOT NULL DEFAULT now(),
        updated_at    timestamptz NOT NULL DEFAULT now(),
        last_login_at timestamptz,
        last_seen_at  timestamptz,
        PRIMARY KEY (tenant_id, id),
        UNIQUE (tenant_id, realm, subject)
    )
    """,
    # Sign-in finds a built-in user by email, whatever its letter case.
    "CREATE UNIQUE INDEX app_user_email_idx ON app_user (tenant_id, realm, lower(email)) WHERE builtin",
    "CREATE INDEX app_user_listing_idx ON app_user (tenant_id, created_at, id)",
    """
    CREATE TABLE service_client (
        tenant_id   uuid NOT NULL,
        realm       text NOT NULL,
        client_id   text NOT NULL CHECK (client_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$'),
        secret_hash text NOT NULL CHECK (secret_hash ~ '^[0-9a-f]{64}$'),
        roles       text[] NOT NULL,
        scopes      text[] NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        revoked_at  timestamptz,
        PRIMARY KEY (tenant_id, realm, client_id)
    )
    """,
    """
    CREATE TABLE user_event (
        tenant_id  uuid NOT NULL,
        id         uuid NOT NULL,
        user_id    uuid NOT NULL,
        kind       text NOT NULL,
        actor      text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, id),
        FOREIGN KEY (tenant_id, user_id) REFERENCES app_user (tenant_id, id)
    )
    """,
    "CREATE INDEX user_event_time_idx ON user_event (tenant_id, created_at)",
    """
    CREATE TABLE login_failure (
        tenant_id       uuid NOT NULL,
        throttle_key    text NOT NULL,
        failures        integer NOT NULL,
        last_failure_at timestamptz NOT NULL,
        PRIMARY KEY (tenant_id, throttle_key)
    )
    """,
]

BACKWARDS = [
    "DROP TABLE login_failure",
    "DROP TABLE user_event",
    "DROP TABLE service_client",
    "DROP INDEX app_user_listing_idx",
    "DROP INDEX app_user_email_idx",
    "DROP TABLE app_user",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="ticketing", description=DESCRIPTION)
    manager.add_raw(run_ddl(STATEMENTS))
    manager.add_raw_backwards(run_ddl(BACKWARDS))
    return manager
