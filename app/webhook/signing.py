"""Standard Webhooks signing: secrets are `whsec_` + base64 of 32 random bytes; a signature is `v1,` + base64 of
HMAC-SHA256 over "<webhook-id>.<webhook-timestamp>.<body>", so a captured body cannot be replayed under another id or
time (unlike an HMAC over the body alone)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - the specification's prefix, not a secret
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def is_secret(value: str) -> bool:
    """Whether `value` is a secret in the specification's form (a tenant file's environment variable must hold one)."""
    if not value.startswith(SECRET_PREFIX):
        return False
    try:
        key = base64.b64decode(value.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError:
        return False
    return len(key) >= 24


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_header(secrets_in_use: list[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per secret in use (two during a rotation's overlap), separated
    by spaces, as the specification allows so that receivers can switch secrets without losing a message."""
    return " ".join(signature(secret, message_id, timestamp, body) for secret in secrets_in_use)
