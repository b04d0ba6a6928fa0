"""A realm's public signing keys, by `kid`.

Inline keys are fixed. A JWKS URL is fetched lazily, cached, and fetched again when a token names a kid we do not
know (key rotation) or when the cached set is older than JWKS_MAX_AGE_SECONDS (key revocation). Unknown-kid fetches
happen at most once per `min_refresh_seconds`, so a flood of forged kids cannot turn us into a load generator
against the identity provider.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

import httpx
import msgspec

from app.auth.jwt import InvalidKey, VerificationKey, public_key_from_jwk
from app.tenancy.model import RealmConfig

log = logging.getLogger("app.auth.keys")

JWKS_MAX_AGE_SECONDS = 600.0
MAX_JWKS_BYTES = 256 * 1024


def parse_jwks(document: Any, source: str) -> dict[str, VerificationKey]:
    keys: dict[str, VerificationKey] = {}
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise InvalidKey(f"{source}: not a JWKS document")
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        try:
            key = public_key_from_jwk(entry)
        except InvalidKey as exc:
            # One unusable key (an encryption key, say) must not disable the realm's other keys.
            log.warning("ignoring JWK", extra={"source": source, "kid": entry.get("kid"), "reason": str(exc)})
            continue
        keys[key.kid] = key
    return keys


class RealmKeySet:
    def __init__(
        self,
        realm: RealmConfig,
        http: httpx.AsyncClient,
        *,
        min_refresh_seconds: float,
        fetch_timeout_seconds: float,
    ) -> None:
        self.realm = realm
        self.url = realm.jwks_url
        self._http = http
        self._min_refresh = min_refresh_seconds
        self._timeout = fetch_timeout_seconds
        self._lock = asyncio.Lock()
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self._keys: dict[str, VerificationKey] = parse_jwks(realm.jwks, realm.name) if realm.jwks is not None else {}

    def knows(self, kid: str) -> bool:
        """Whether the realm's current key set still has this kid (a refresh may have withdrawn it)."""
        return kid in self._keys

    async def get(self, kid: str) -> VerificationKey | None:
        key = self._keys.get(kid)
        if self.url is None:
            return key
        now = time.monotonic()
        stale = now - self._fetched_at > JWKS_MAX_AGE_SECONDS
        if key is not None and not stale:
            return key
        if now - self._attempted_at < self._min_refresh:
            return key
        async with self._lock:
            # Another request may have refreshed while we waited for the lock.
            if time.monotonic() - self._attempted_at >= self._min_refresh:
                await self._refresh()
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        assert self.url is not None
        self._attempted_at = time.monotonic()
        try:
            response = await self._http.get(self.url, timeout=self._timeout, follow_redirects=False)
            response.raise_for_status()
            if len(response.content) > MAX_JWKS_BYTES:
                raise InvalidKey(f"{self.url}: JWKS larger than {MAX_JWKS_BYTES} bytes")
            keys = parse_jwks(msgspec.json.decode(response.content), self.url)
        except (httpx.HTTPError, msgspec.DecodeError, InvalidKey) as exc:
            # Keep serving the keys we have: an identity-provider outage must not log everyone out.
            log.warning("JWKS fetch failed", extra={"url": self.url, "reason": f"{exc.__class__.__name__}: {exc}"})
            return
        self._keys = keys
        self._fetched_at = time.monotonic()
        log.info("JWKS fetched", extra={"url": self.url, "kids": sorted(keys)})
