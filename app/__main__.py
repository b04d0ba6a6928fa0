"""Command line: serve, migrate, tenants sync, token.

python -m app serve           start the embedded cluster and the private Redis server if needed, migrate,
                              sync tenants, serve HTTP
python -m app migrate         apply pending migrations
python -m app tenants sync    load tenants/*.toml into the database (idempotent; running servers reload);
                              a tenant whose file is gone or says `disabled = true` is disabled, its data kept
python -m app tenants purge <id-or-slug> [--yes]
                              delete every row of a disabled tenant (without --yes: only show what would go)
python -m app token --tenant acme [--roles ...] [--scope ...] [--sub ...] [--ttl ...]
python -m app webhooks        dispatch and deliver webhooks only (every `serve` process also does, unless
                              WEBHOOK_DELIVERY=false); run as many as you like
python -m app user --tenant globex --email ... [--role agent] [--password ...] [--name ...]
                              create (or reset) a user of the tenant's builtin realm; prints only its password
python -m app client create|revoke --tenant globex --client <id> [--roles ...] [--scope ...]
                              a service account of the builtin realm (create prints only its secret)
python -m app realm rotate-key --tenant globex
                              a new signing key for the builtin realm (the previous one stays published)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from app.config import ConfigError, Settings, load_settings, trusted_proxies
from app.db.cluster import ClusterError, EmbeddedCluster
from app.ratelimit.server import PrivateRedis, RedisServerError
from app.tenancy.model import RoleMapping, TenantConfig

if TYPE_CHECKING:
    from app.tenancy.service import SyncResult
    from app.user.signin import Provisioning

T = TypeVar("T")

log = logging.getLogger("app.cli")

DEFAULT_SCOPE = "tickets:read tickets:write"
DEFAULT_SUBJECT = "dev-agent"
DEFAULT_TTL_SECONDS = 3600


class StartupError(Exception):
    """Start-up cannot succeed; the message names the cause."""


def embedded_cluster(settings: Settings) -> EmbeddedCluster:
    return EmbeddedCluster(settings.data_dir / "postgres")


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[str]:
    """Yield a database URL: DATABASE_URL if set, else the embedded cluster's, which is stopped afterwards unless
    another running command still uses it (see EmbeddedCluster.in_use)."""
    if settings.database_url:
        yield settings.database_url
        return
    with embedded_cluster(settings).in_use() as dsn:
        yield dsn


@contextlib.contextmanager
def redis(settings: Settings) -> Iterator[str | None]:
    """Yield the URL of the Redis that rate limits count in: REDIS_URL if set, else the private server's in
    data_dir (stopped afterwards unless another running command still uses it); None when rate limits are off."""
    if not settings.rate_limits_enabled or settings.redis_url:
        yield settings.redis_url
        return
    with PrivateRedis(settings.data_dir / "redis").in_use() as url:
        yield url


async def prepare_database(settings: Settings, dsn: str) -> tuple[SyncResult, list[str]]:
    """Check the database, migrate, sync tenant files and seed template ticket types. The files are every tenant
    there is: a tenant without one is disabled. An empty or missing folder is refused (by load_tenant_files), so a
    folder mounted wrong cannot disable every tenant."""
    from app.auth.jwt import signing_key_problem
    from app.bootstrap import apply_tenants, migrate
    from app.tenancy.files import load_tenant_files

    tenants = load_tenant_files(settings.tenants_dir, settings.data_dir, signing_key_problem)
    await migrate(dsn)
    return await apply_tenants(dsn, tenants, disable_missing=True, settings=settings)


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family in (socket.AF_INET, socket.AF_INET6):
        # uvicorn adopts an inherited fd as a Unix socket and so never sets TCP_NODELAY on accepted connections;
        # set on the listener, Linux copies it to them. Without it, Nagle plus delayed ACKs add ~40 ms per response.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings) -> None:
    import uvicorn

    from app.limits import http_protocol

    sock = bind_socket(settings.host, settings.port)
    # SIGTERM ends serve as cleanly as Ctrl-C, so the embedded cluster is stopped too. (uvicorn shuts down
    # gracefully on either, then raises the signal again with this handler; the default one would kill us.)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with database(settings) as dsn, redis(settings) as redis_url:
        asyncio.run(prepare_database(settings, dsn))
        # Workers build their app from the environment (uvicorn's factory import), so hand them the resolved URLs.
        os.environ["DATABASE_URL"] = dsn
        if redis_url is not None:
            os.environ["REDIS_URL"] = redis_url
        log.info(
            "serving",
            extra={
                "url": f"http://{settings.host}:{settings.port}",
                "docs": f"http://{settings.host}:{settings.port}/schema",
                "database": "embedded cluster" if not settings.database_url else "DATABASE_URL",
                "redis": "off" if redis_url is None else "REDIS_URL" if settings.redis_url else "private server",
                "workers": settings.workers,
            },
        )
        uvicorn.run(
            "app.asgi:worker_app",
            factory=True,
            fd=sock.fileno(),
            workers=settings.workers,
            loop="uvloop",
            http=http_protocol(settings.request_header_timeout_seconds, settings.request_body_timeout_seconds),
            lifespan="on",
            access_log=False,
            log_config=None,
            server_header=False,
            # No trusted proxy in front by default (X-Forwarded-For would only cost time per request, and from an
            # untrusted client it is a lie); FORWARDED_ALLOW_IPS names the proxies that are trusted.
            proxy_headers=bool(trusted_proxies(settings)),
            forwarded_allow_ips=trusted_proxies(settings) or None,
        )


def migrate(settings: Settings) -> None:
    from app.bootstrap import migrate as apply_migrations

    with database(settings) as dsn:
        asyncio.run(apply_migrations(dsn))
    print("migrations applied")


def tenants_sync(settings: Settings) -> None:
    with database(settings) as dsn:
        synced, seeded = asyncio.run(prepare_database(settings, dsn))
    print(f"tenants changed: {', '.join(synced.changed)}" if synced.changed else "tenants unchanged")
    if synced.disabled:
        print(
            f"tenants disabled: {', '.join(synced.disabled)} (their data is kept; "
            "`python -m app tenants purge <slug> --yes` deletes it)"
        )
    if synced.enabled:
        print(f"tenants enabled again: {', '.join(synced.enabled)}")
    if seeded:
        print(f"ticket types seeded: {', '.join(seeded)}")


def tenants_purge(settings: Settings, reference: str, confirmed: bool) -> None:
    from app.bootstrap import purge_tenant
    from app.tenancy.service import PurgeRefused

    with database(settings) as dsn:
        result = asyncio.run(purge_tenant(dsn, reference, commit=confirmed))
    verb = "removed" if result.committed else "would be removed (nothing was)"
    print(f"tenant {result.slug} ({result.tenant_id}): rows {verb}")
    width = max(len(table) for table in result.removed)
    for table, count in result.removed.items():
        print(f"  {table:<{width}}  {count}")
    if not result.committed:
        raise PurgeRefused(
            f"nothing was removed; to delete these rows for ever: python -m app tenants purge {reference} --yes"
        )


def token(settings: Settings, args: argparse.Namespace) -> None:
    from app.auth import jwt
    from app.auth.jwt import signing_key_problem
    from app.tenancy.devkeys import ensure_dev_key, public_jwk
    from app.tenancy.files import load_tenant_file

    if not args.tenant:
        raise StartupError("name a tenant: make -s token TENANT=<slug>")
    path = settings.tenants_dir / f"{args.tenant}.toml"
    if not path.exists():
        raise StartupError(f"no tenant file {path}")
    tenant = load_tenant_file(path, settings.data_dir, signing_key_problem)
    realm = next(
        (r for r in tenant.realms if r.dev_key_algorithm and args.realm in (None, r.name)),
        None,
    )
    if realm is None or realm.dev_key_algorithm is None:
        raise StartupError(f"tenant {args.tenant} has no development realm (keys.generate) to sign with")
    if args.ttl is not None and args.ttl <= 0:
        raise StartupError("--ttl must be a positive number of seconds")
    private_pem = ensure_dev_key(settings.data_dir, tenant.slug, realm.name, realm.dev_key_algorithm)
    roles = args.roles.replace(",", " ").split() if args.roles else default_roles(tenant.roles)
    subject = args.sub or DEFAULT_SUBJECT
    now = int(time.time())
    claims = {
        "iss": realm.issuer,
        "aud": realm.audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + (DEFAULT_TTL_SECONDS if args.ttl is None else args.ttl),
        "jti": str(uuid.uuid4()),
        "typ": "Bearer",
        "azp": "ticketing-dev",
        "preferred_username": subject,
        "scope": args.scope if args.scope is not None else DEFAULT_SCOPE,
        "realm_access": {"roles": roles},
        tenant.tenant_claim: str(tenant.id),
    }
    if subject.startswith(("service-account-", "sa-")):
        # Keycloak marks service-account tokens with the client id.
        claims["client_id"] = subject
    print(jwt.sign(claims, private_pem, public_jwk(private_pem)["kid"], realm.dev_key_algorithm))


def webhooks(settings: Settings) -> None:
    from app.bootstrap import deliver_webhooks

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with database(settings) as dsn:
        asyncio.run(deliver_webhooks(settings, dsn))


def default_roles(roles: RoleMapping) -> list[str]:
    from app.user.roles import agent_roles

    return agent_roles(roles)


def _tenant_file(settings: Settings, slug: str | None) -> TenantConfig:
    from app.auth.jwt import signing_key_problem
    from app.tenancy.files import load_tenant_file

    if not slug:
        raise StartupError("name a tenant: TENANT=<slug>")
    path = settings.tenants_dir / f"{slug}.toml"
    if not path.exists():
        raise StartupError(f"no tenant file {path}")
    return load_tenant_file(path, settings.data_dir, signing_key_problem)


async def _provision(settings: Settings, dsn: str, act: Callable[[Provisioning], Awaitable[T]]) -> T:
    """Bring the database up to date (migrations, tenant files: a new builtin realm is known), then `act`."""
    from app.db.database import Database
    from app.user.passwords import PasswordHasher
    from app.user.repository import ClientRepository, UserRepository
    from app.user.signin import Provisioning

    # Piccolo reports on stdout; these commands print only their result there.
    with contextlib.redirect_stdout(sys.stderr):
        await prepare_database(settings, dsn)
    db = Database(dsn, min_size=1, max_size=1)
    await db.open()
    try:
        return await act(
            Provisioning(
                db,
                UserRepository(db),
                ClientRepository(db),
                PasswordHasher(settings.password_hash_profile, max_concurrent=1),
            )
        )
    finally:
        await db.close()


def user(settings: Settings, args: argparse.Namespace) -> None:
    tenant = _tenant_file(settings, args.tenant)
    if not args.email:
        raise StartupError("name the user: EMAIL=<address>")
    if args.password is not None and not 8 <= len(args.password) <= 256:
        raise StartupError("a password is 8 to 256 characters")
    with database(settings) as dsn:
        _, password = asyncio.run(
            _provision(settings, dsn, lambda p: p.put_user(tenant, args.email, args.role, args.password, args.name))
        )
    print(password)


def client(settings: Settings, args: argparse.Namespace) -> None:
    tenant = _tenant_file(settings, args.tenant)
    with database(settings) as dsn:
        if args.action == "create":
            roles = args.roles.replace(",", " ").split() if args.roles else default_roles(tenant.roles)
            scope = (args.scope if args.scope is not None else DEFAULT_SCOPE).split()
            secret = asyncio.run(_provision(settings, dsn, lambda p: p.put_client(tenant, args.client, roles, scope)))
            print(secret)
        elif not asyncio.run(_provision(settings, dsn, lambda p: p.revoke_client(tenant, args.client))):
            raise StartupError(f"tenant {tenant.slug} has no service account {args.client!r}")
        else:
            print(f"revoked {args.client}; its tokens are refused within seconds")


def rotate_key(settings: Settings, args: argparse.Namespace) -> None:
    from app.tenancy.devkeys import rotate_builtin_key

    tenant = _tenant_file(settings, args.tenant)
    realm = next((r for r in tenant.realms if r.builtin), None)
    if realm is None or realm.private_key_file is not None:
        raise StartupError(f"tenant {tenant.slug} has no builtin realm with a generated key (keys.generate)")
    kid = rotate_builtin_key(settings.data_dir, tenant.slug, realm.name, _algorithm_of(realm.jwks, realm.signing_kid))
    with database(settings) as dsn, contextlib.redirect_stdout(sys.stderr):
        # Running servers reload the tenant (and publish the new key) when the sync notifies them.
        asyncio.run(prepare_database(settings, dsn))
    print(kid)


def _algorithm_of(jwks: dict[str, Any] | None, kid: str | None) -> str:
    return str(next(key["alg"] for key in (jwks or {})["keys"] if key["kid"] == kid))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP service")
    commands.add_parser("migrate", help="apply pending migrations")
    tenants = commands.add_parser("tenants", help="tenant files")
    tenant_actions = tenants.add_subparsers(dest="action", required=True)
    tenant_actions.add_parser("sync", help="load the tenant files; a tenant without one is disabled")
    purge_parser = tenant_actions.add_parser("purge", help="delete every row of a disabled tenant")
    purge_parser.add_argument("tenant", help="the tenant's id or slug")
    purge_parser.add_argument("--yes", action="store_true", help="delete (without it: show what would be deleted)")
    token_parser = commands.add_parser("token", help="print a development Bearer token")
    token_parser.add_argument("--tenant", required=True, help="tenant slug (file name in tenants/)")
    token_parser.add_argument("--realm", help="realm name (default: the tenant's development realm)")
    token_parser.add_argument("--roles", help="realm roles, space or comma separated (default: an agent)")
    token_parser.add_argument("--scope", help=f"OAuth scopes (default: {DEFAULT_SCOPE!r})")
    token_parser.add_argument("--sub", help=f"subject (default: {DEFAULT_SUBJECT}); sa-* is a service account")
    token_parser.add_argument("--ttl", type=int, help=f"lifetime in seconds (default: {DEFAULT_TTL_SECONDS})")
    commands.add_parser("webhooks", help="dispatch and deliver webhooks (without serving HTTP)")
    user_parser = commands.add_parser("user", help="create or reset a user of a tenant's builtin realm")
    user_parser.add_argument("--tenant", required=True, help="tenant slug (file name in tenants/)")
    user_parser.add_argument("--email", required=True, help="the address the user signs in with")
    user_parser.add_argument("--role", choices=("admin", "agent", "customer"), default="agent")
    user_parser.add_argument("--password", help="the password to set (default: a generated one, printed)")
    user_parser.add_argument("--name", help="the user's name")
    client_parser = commands.add_parser("client", help="service accounts of a tenant's builtin realm")
    client_parser.add_argument("action", choices=("create", "revoke"), help="create (or reset) prints the secret")
    client_parser.add_argument("--tenant", required=True, help="tenant slug (file name in tenants/)")
    client_parser.add_argument("--client", required=True, help="the client id")
    client_parser.add_argument("--roles", help="realm roles its tokens carry (default: an agent)")
    client_parser.add_argument("--scope", help=f"OAuth scopes its tokens carry (default: {DEFAULT_SCOPE!r})")
    realm_parser = commands.add_parser("realm", help="builtin realms")
    realm_parser.add_argument("action", choices=("rotate-key",), help="a new signing key; the previous stays published")
    realm_parser.add_argument("--tenant", required=True, help="tenant slug (file name in tenants/)")
    args = parser.parse_args(argv)

    from app.auth.jwt import InvalidKey
    from app.db.errors import DatabaseUnavailable
    from app.observability import configure_logging
    from app.tenancy.files import TenantFileError
    from app.tenancy.service import PurgeRefused, TenantConflict
    from app.user.signin import ProvisioningRefused
    from app.webhook.service import DeclaredWebhookError

    try:
        settings = load_settings()
        if args.command not in ("token", "user", "client", "realm"):
            configure_logging(settings.log_level)
        if args.command == "serve":
            serve(settings)
        elif args.command == "migrate":
            migrate(settings)
        elif args.command == "tenants" and args.action == "purge":
            tenants_purge(settings, args.tenant, args.yes)
        elif args.command == "tenants":
            tenants_sync(settings)
        elif args.command == "webhooks":
            webhooks(settings)
        elif args.command == "user":
            user(settings, args)
        elif args.command == "client":
            client(settings, args)
        elif args.command == "realm":
            rotate_key(settings, args)
        else:
            token(settings, args)
    except (
        ConfigError,
        ClusterError,
        RedisServerError,
        DatabaseUnavailable,
        TenantFileError,
        TenantConflict,
        PurgeRefused,
        StartupError,
        InvalidKey,
        DeclaredWebhookError,
        ProvisioningRefused,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
