"""Idempotency-Key for every write (create, update, status change, and every POST/PUT/PATCH/DELETE).

A key is scoped to the caller (tenant, realm and subject: another client reusing a key must not receive this
answer). The first request with a key claims it and runs its write in the same transaction as the claim, and stores
what the write returned there too, so a replay can never find the key claimed without its write, nor the write
without its answer. A retry with the same request gets the stored answer (replayed); a different request under the
same key is refused with 422. A concurrent retry waits on the first one's claim and then replays it. Keys expire
after the configured time to live and are swept (ExpiredIdempotencyKeySweep).
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from app.auth.principal import Principal
from app.db.database import Database
from app.errors import AppError, InputValidationFailure
from app.idempotency.repository import IdempotencyRepository

MAX_KEY_LENGTH = 255
# Printable ASCII, like the IETF draft's Idempotency-Key (a structured-field string).
KEY = re.compile(rf"[ -~]{{1,{MAX_KEY_LENGTH}}}")

R = TypeVar("R")
# A write's result, and whether it was replayed from an earlier request with the same key.
Outcome = tuple[R, bool]

_canonical = msgspec.json.Encoder(order="sorted")
_json = msgspec.json.Encoder()


class IdempotencyKeyReused(AppError):
    status = 422
    code = "IDEMPOTENCY_KEY_REUSED"

    def __init__(self) -> None:
        super().__init__("This Idempotency-Key was already used with a different request body")


@dataclass(frozen=True, slots=True)
class Claim:
    """A request's key: the digest of its scope, and the fingerprint of the request it may be replayed for."""

    scope_digest: bytes
    fingerprint: str


def scope_digest(realm: str, subject: str, key: str) -> bytes:
    """What an Idempotency-Key is stored as: the SHA-256 of its scope, 32 bytes however long the parts (a btree
    index row cannot exceed about 2.7 kB). Realm names and keys hold no newline, so the three parts cannot run into
    each other. The migration that introduced digests computes the same from the stored text."""
    return hashlib.sha256(f"{realm}\n{subject}\n{key}".encode()).digest()


def check_key(key: str | None) -> None:
    """A malformed key is 400; for a route that must refuse it before it reads a large body."""
    if key is not None and KEY.fullmatch(key) is None:
        raise InputValidationFailure(
            "Invalid request headers", {"Idempotency-Key": f"1 to {MAX_KEY_LENGTH} printable ASCII characters"}
        )


class Idempotency:
    def __init__(self, db: Database, repository: IdempotencyRepository, ttl: datetime.timedelta) -> None:
        self._db = db
        self._repository = repository
        self._ttl = ttl

    def claim(self, principal: Principal, key: str | None, operation: str, *request: object) -> Claim | None:
        """The claim for `key` (None without one; a malformed key is 400). The fingerprint covers the operation, the
        resource and the body (`request`, encoded with sorted keys), so a key reused for anything else is refused."""
        if key is None:
            return None
        check_key(key)
        fingerprint = hashlib.sha256(_canonical.encode([operation, *request])).hexdigest()
        return Claim(scope_digest(principal.realm, principal.subject, key), fingerprint)

    async def once(
        self,
        principal: Principal,
        claim: Claim | None,
        write: Callable[[], Awaitable[R]],
        stored: msgspec.json.Decoder[R],
        kept: Callable[[R], R] | None = None,
    ) -> Outcome[R]:
        """Run `write` (its own transaction becomes a savepoint of this one), or, when the key was used before with
        the same request, return what that write returned (as `kept` reduced it, when given: what an answer shows
        once must not be stored for its replays). A write that fails rolls its claim back."""
        if claim is None:
            return await write(), False
        tenant_id = principal.tenant_id
        while True:
            expired_before = datetime.datetime.now(datetime.UTC) - self._ttl
            async with self._db.transaction():
                if await self._repository.claim(tenant_id, claim.scope_digest, claim.fingerprint, expired_before):
                    result = await write()
                    keep = result if kept is None else kept(result)
                    await self._repository.store(tenant_id, claim.scope_digest, _json.encode(keep).decode())
                    return result, False
                earlier = await self._repository.stored(tenant_id, claim.scope_digest)
            # None: the sweep removed the expired key between the claim and the read; claim it again.
            if earlier is not None:
                if earlier.request_hash != claim.fingerprint:
                    raise IdempotencyKeyReused()
                return stored.decode(earlier.response), True
