"""What the persistence boundary raises. Callers above app/db catch these, never a driver's exceptions."""

from __future__ import annotations


class DatabaseUnavailable(Exception):
    """The database cannot be reached or used; the message names the cause without credentials."""


class UniqueViolation(Exception):
    """A write would duplicate a unique key; `constraint` names the index or constraint."""

    def __init__(self, constraint: str | None) -> None:
        super().__init__(f"unique constraint {constraint} violated")
        self.constraint = constraint


class UnstorableText(Exception):
    """Text PostgreSQL cannot store (a NUL character, or characters outside the server encoding)."""
