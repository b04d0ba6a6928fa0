"""Piccolo table definitions. The schema itself is created only by the migrations in migrations/."""

from piccolo.columns import JSONB, UUID, Text, Timestamptz
from piccolo.table import Table


class Tenant(Table, tablename="tenant"):
    id = UUID(primary_key=True)
    slug = Text(unique=True)
    name = Text()
    # The validated tenant file, with signing keys resolved to an inline JWKS (never private keys).
    config = JSONB()
    config_hash = Text()
    created_at = Timestamptz()
    updated_at = Timestamptz()
