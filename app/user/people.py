"""Seed 004's people, `{id, name, email}`, where `id` is the subject tickets, comments and events record: the name
and email the users directory has for a subject. Used by the v1 surface, comments and webhook bodies alike."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable

from app.user.repository import UserRepository

# Subject -> (name, email).
People = dict[str, tuple[str | None, str | None]]


async def people(users: UserRepository, tenant_id: uuid.UUID, subjects: Iterable[str]) -> People:
    """The name and email the directory has for each subject it knows. A subject two realms of the tenant have is two
    people the record cannot tell apart: it gets no name, so that neither can show under the other's; a subject of no
    user (a service account, the system) has none either."""
    wanted = sorted(set(subjects))
    if not wanted:
        return {}
    rows = await users.by_subjects(tenant_id, wanted)
    realms = Counter(row.subject for row in rows)
    return {row.subject: (row.name, row.email) for row in rows if realms[row.subject] == 1}
