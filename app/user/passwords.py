"""Argon2id password hashes (argon2-cffi, with its current recommendation: RFC 9106's low-memory profile; the test
suite uses the library's cheapest profile).

Hashing takes tens of milliseconds of CPU and 64 MiB: it runs in a thread, so the event loop keeps serving, and at
most `max_concurrent` at a time, so a burst of sign-ins cannot exhaust memory. A sign-in for an email no user has
verifies against a hash of a random password all the same, so it takes as long as a wrong password does.
"""

from __future__ import annotations

import asyncio
import secrets

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class PasswordHasher:
    def __init__(self, profile: str = "RFC_9106_LOW_MEMORY", max_concurrent: int = 2) -> None:
        self._hasher = argon2.PasswordHasher.from_parameters(getattr(argon2.profiles, profile))
        self._slots = asyncio.Semaphore(max_concurrent)
        self._decoy = self._hasher.hash(secrets.token_urlsafe(32))

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> tuple[bool, str | None]:
        """Whether the password matches the stored hash (always False without one, after the same work), and a new
        hash when the stored one was made with other parameters than today's."""
        async with self._slots:
            return await asyncio.to_thread(self._verify, stored, password)

    def _verify(self, stored: str | None, password: str) -> tuple[bool, str | None]:
        try:
            self._hasher.verify(stored or self._decoy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False, None
        if stored is None:
            return False, None
        return True, self._hasher.hash(password) if self._hasher.check_needs_rehash(stored) else None
