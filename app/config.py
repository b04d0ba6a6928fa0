"""Settings from the environment, parsed once into one typed struct."""

from __future__ import annotations

import ipaddress
import math
import os
from pathlib import Path
from typing import Literal

import msgspec

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(Exception):
    """A setting is present but unusable; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    # None means "use the embedded cluster in data_dir"; the CLI fills it in before the app starts.
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    data_dir: Path = PROJECT_ROOT / ".data"
    tenants_dir: Path = PROJECT_ROOT / "tenants"
    max_body_bytes: int = 1024 * 1024
    # A connection must deliver each request's headers within this time, counted from its first byte (the first
    # request's: from the connection being accepted); otherwise it is closed.
    request_header_timeout_seconds: float = 10.0
    # While a request's body is incomplete, a connection that sends nothing for this long, or whose body has taken
    # this long plus a second per 500 bytes, is closed (app/limits.py).
    request_body_timeout_seconds: float = 10.0
    log_level: str = "INFO"
    db_pool_min: int = 2
    db_pool_max: int = 16
    # How long a request waits for a database connection (opening one included) before it is answered 503.
    db_acquire_timeout_seconds: float = 5.0
    # Clock skew tolerated on exp/nbf/iat, in seconds.
    jwt_leeway_seconds: int = 30
    # A JWKS URL is fetched again for an unknown kid at most this often, so forged kids cannot hammer the IdP.
    jwks_min_refresh_seconds: float = 30.0
    jwks_fetch_timeout_seconds: float = 5.0
    token_cache_size: int = 10_000
    # How long an Idempotency-Key is remembered (its answer replayed); expired keys are swept.
    idempotency_key_ttl_seconds: float = 86_400.0
    # How often each worker looks for pending-close tickets whose time has come.
    pending_close_interval_seconds: float = 5.0
    # Where attachment files are kept: in data_dir/attachments, or in an S3-compatible object store (credentials from
    # the standard AWS variables or files, never from here).
    attachment_storage: Literal["filesystem", "s3"] = "filesystem"
    attachment_s3_bucket: str | None = None
    attachment_s3_endpoint_url: str | None = None
    attachment_s3_region: str | None = None
    attachment_s3_prefix: str = ""
    # How often each worker removes blobs no live attachment owns (a crash between storing a blob and committing its
    # row, a removal that failed) and abandoned partial uploads; only those older than the grace period, so an upload
    # still under way is never touched.
    attachment_sweep_interval_seconds: float = 3600.0
    attachment_orphan_grace_seconds: float = 3600.0
    # The proxies in front (addresses or networks, comma-separated): from them, a request's client address is the
    # last one X-Forwarded-For names (what sign-in's throttle and the address rate limit count). Empty: no proxy is
    # trusted, and the connection's address is the client's.
    forwarded_allow_ips: str = ""
    # Webhooks (app/webhook). Whether subscriptions may reach loopback receivers, over plain http too (`make run`
    # turns it on for trying webhooks locally; never in production: see app/webhook/ssrf.py).
    webhook_allow_loopback: bool = False
    # Whether this service process delivers webhooks (off when `python -m app webhooks` processes do it instead).
    webhook_delivery: bool = True
    webhook_concurrency: int = 16
    webhook_poll_interval_seconds: float = 0.25
    webhook_connect_timeout_seconds: float = 5.0
    # The whole attempt: connecting, sending, and the response's status and first 1 KiB.
    webhook_timeout_seconds: float = 15.0
    # Exponential backoff with jitter between attempts (a 429 or 503's Retry-After wins), from the base up to the
    # maximum, until the horizon (from when the delivery was queued) has passed: then it is dead-lettered.
    webhook_retry_base_seconds: float = 5.0
    webhook_retry_max_seconds: float = 3600.0
    webhook_retry_horizon_seconds: float = 3 * 86_400.0
    # A subscription whose deliveries have all failed for this long is disabled, with the reason in its GET.
    webhook_disable_after_seconds: float = 5 * 86_400.0
    # After a rotation the previous secret keeps signing (both signatures are sent) for this long.
    webhook_secret_overlap_seconds: float = 86_400.0
    # Rate limits (plans in the tenant files) count in Redis, shared by every worker and host. None means "use the
    # private server in data_dir"; the CLI fills it in before the app starts. RATE_LIMITS_ENABLED=false turns the
    # limits off (no Redis at all).
    redis_url: str | None = None
    rate_limits_enabled: bool = True
    # A Redis that does not answer within this time is treated as away: requests are served without limits.
    redis_timeout_seconds: float = 0.25
    # Lifetime of the tokens builtin realms issue (sign-in and client credentials).
    builtin_token_ttl_seconds: int = 900
    # Failed sign-ins allowed before each further one makes the account (or the client address) wait: 1 s, 2 s, 4 s,
    # ... up to a minute for an account and 15 minutes for an address (app/user/throttle.py).
    login_free_failures_per_account: int = 5
    login_free_failures_per_address: int = 20
    # argon2-cffi's parameter profile for password hashes: its current recommendation, or (tests only: the suite
    # hashes hundreds of passwords) its cheapest.
    password_hash_profile: Literal["RFC_9106_LOW_MEMORY", "CHEAPEST"] = "RFC_9106_LOW_MEMORY"  # noqa: S105


_ENV = {
    "database_url": "DATABASE_URL",
    "host": "HOST",
    "port": "PORT",
    "workers": "WORKERS",
    "data_dir": "DATA_DIR",
    "tenants_dir": "TENANTS_DIR",
    "max_body_bytes": "MAX_BODY_BYTES",
    "request_header_timeout_seconds": "REQUEST_HEADER_TIMEOUT_SECONDS",
    "request_body_timeout_seconds": "REQUEST_BODY_TIMEOUT_SECONDS",
    "log_level": "LOG_LEVEL",
    "db_pool_min": "DB_POOL_MIN",
    "db_pool_max": "DB_POOL_MAX",
    "db_acquire_timeout_seconds": "DB_ACQUIRE_TIMEOUT_SECONDS",
    "jwt_leeway_seconds": "JWT_LEEWAY_SECONDS",
    "jwks_min_refresh_seconds": "JWKS_MIN_REFRESH_SECONDS",
    "jwks_fetch_timeout_seconds": "JWKS_FETCH_TIMEOUT_SECONDS",
    "token_cache_size": "TOKEN_CACHE_SIZE",
    "idempotency_key_ttl_seconds": "IDEMPOTENCY_KEY_TTL_SECONDS",
    "pending_close_interval_seconds": "PENDING_CLOSE_INTERVAL_SECONDS",
    "attachment_storage": "ATTACHMENT_STORAGE",
    "attachment_s3_bucket": "ATTACHMENT_S3_BUCKET",
    "attachment_s3_endpoint_url": "ATTACHMENT_S3_ENDPOINT_URL",
    "attachment_s3_region": "ATTACHMENT_S3_REGION",
    "attachment_s3_prefix": "ATTACHMENT_S3_PREFIX",
    "attachment_sweep_interval_seconds": "ATTACHMENT_SWEEP_INTERVAL_SECONDS",
    "attachment_orphan_grace_seconds": "ATTACHMENT_ORPHAN_GRACE_SECONDS",
    "forwarded_allow_ips": "FORWARDED_ALLOW_IPS",
    "webhook_allow_loopback": "WEBHOOK_ALLOW_LOOPBACK",
    "webhook_delivery": "WEBHOOK_DELIVERY",
    "webhook_concurrency": "WEBHOOK_CONCURRENCY",
    "webhook_poll_interval_seconds": "WEBHOOK_POLL_INTERVAL_SECONDS",
    "webhook_connect_timeout_seconds": "WEBHOOK_CONNECT_TIMEOUT_SECONDS",
    "webhook_timeout_seconds": "WEBHOOK_TIMEOUT_SECONDS",
    "webhook_retry_base_seconds": "WEBHOOK_RETRY_BASE_SECONDS",
    "webhook_retry_max_seconds": "WEBHOOK_RETRY_MAX_SECONDS",
    "webhook_retry_horizon_seconds": "WEBHOOK_RETRY_HORIZON_SECONDS",
    "webhook_disable_after_seconds": "WEBHOOK_DISABLE_AFTER_SECONDS",
    "webhook_secret_overlap_seconds": "WEBHOOK_SECRET_OVERLAP_SECONDS",
    "redis_url": "REDIS_URL",
    "rate_limits_enabled": "RATE_LIMITS_ENABLED",
    "redis_timeout_seconds": "REDIS_TIMEOUT_SECONDS",
    "builtin_token_ttl_seconds": "BUILTIN_TOKEN_TTL_SECONDS",
    "login_free_failures_per_account": "LOGIN_FREE_FAILURES_PER_ACCOUNT",
    "login_free_failures_per_address": "LOGIN_FREE_FAILURES_PER_ADDRESS",
    "password_hash_profile": "PASSWORD_HASH_PROFILE",
}
_WEBHOOK_DURATIONS = tuple(name for name in _ENV if name.startswith("webhook_") and name.endswith("_seconds"))


def _decode_path(kind: type, value: object) -> object:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read settings from the environment; a malformed value is a ConfigError naming its variable."""
    env = os.environ if environ is None else environ
    raw = {field: env[var] for field, var in _ENV.items() if env.get(var, "") != ""}
    try:
        settings = msgspec.convert(raw, Settings, strict=False, dec_hook=_decode_path)
    except msgspec.ValidationError as exc:
        field = str(exc).rsplit("$.", 1)[-1].rstrip("`")
        raise ConfigError(f"invalid environment variable {_ENV.get(field, field)}: {exc}") from None
    if not 0 < settings.port < 65536:
        raise ConfigError(f"invalid environment variable PORT: {settings.port} is not a TCP port")
    if settings.max_body_bytes <= 0:
        raise ConfigError("invalid environment variable MAX_BODY_BYTES: must be positive")
    if not (math.isfinite(settings.request_header_timeout_seconds) and settings.request_header_timeout_seconds > 0):
        raise ConfigError("invalid environment variable REQUEST_HEADER_TIMEOUT_SECONDS: must be a positive number")
    if not (math.isfinite(settings.request_body_timeout_seconds) and settings.request_body_timeout_seconds > 0):
        raise ConfigError("invalid environment variable REQUEST_BODY_TIMEOUT_SECONDS: must be a positive number")
    if not (math.isfinite(settings.db_acquire_timeout_seconds) and settings.db_acquire_timeout_seconds > 0):
        raise ConfigError("invalid environment variable DB_ACQUIRE_TIMEOUT_SECONDS: must be a positive number")
    if not (math.isfinite(settings.idempotency_key_ttl_seconds) and settings.idempotency_key_ttl_seconds > 0):
        raise ConfigError("invalid environment variable IDEMPOTENCY_KEY_TTL_SECONDS: must be a positive number")
    if not (math.isfinite(settings.pending_close_interval_seconds) and settings.pending_close_interval_seconds > 0):
        raise ConfigError("invalid environment variable PENDING_CLOSE_INTERVAL_SECONDS: must be a positive number")
    if not (
        math.isfinite(settings.attachment_sweep_interval_seconds) and settings.attachment_sweep_interval_seconds > 0
    ):
        raise ConfigError("invalid environment variable ATTACHMENT_SWEEP_INTERVAL_SECONDS: must be a positive number")
    if not (math.isfinite(settings.attachment_orphan_grace_seconds) and settings.attachment_orphan_grace_seconds >= 0):
        raise ConfigError("invalid environment variable ATTACHMENT_ORPHAN_GRACE_SECONDS: must be a number, 0 or more")
    if not (math.isfinite(settings.redis_timeout_seconds) and settings.redis_timeout_seconds > 0):
        raise ConfigError("invalid environment variable REDIS_TIMEOUT_SECONDS: must be a positive number")
    if not 0 < settings.builtin_token_ttl_seconds <= 86_400:
        raise ConfigError("invalid environment variable BUILTIN_TOKEN_TTL_SECONDS: must be 1 to 86400 seconds")
    if settings.login_free_failures_per_account < 1:
        raise ConfigError("invalid environment variable LOGIN_FREE_FAILURES_PER_ACCOUNT: must be 1 or more")
    if settings.login_free_failures_per_address < 1:
        raise ConfigError("invalid environment variable LOGIN_FREE_FAILURES_PER_ADDRESS: must be 1 or more")
    if settings.attachment_storage == "s3" and not settings.attachment_s3_bucket:
        raise ConfigError("invalid environment variable ATTACHMENT_S3_BUCKET: required when ATTACHMENT_STORAGE is s3")
    for name in _WEBHOOK_DURATIONS:
        value = getattr(settings, name)
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"invalid environment variable {_ENV[name]}: must be a positive number")
    if settings.webhook_concurrency <= 0:
        raise ConfigError("invalid environment variable WEBHOOK_CONCURRENCY: must be positive")
    for proxy in trusted_proxies(settings):
        try:
            ipaddress.ip_network(proxy)
        except ValueError:
            raise ConfigError(
                f"invalid environment variable FORWARDED_ALLOW_IPS: {proxy[:64]!r} is not an address or a network"
            ) from None
    return settings


def trusted_proxies(settings: Settings) -> list[str]:
    return [proxy.strip() for proxy in settings.forwarded_allow_ips.split(",") if proxy.strip()]
