"""The v1 mappings are built once per tenant and reused for as long as the tenant file's [v1] section and the ticket
type they were built from are the current ones; a new type version or a reloaded tenant file builds them again."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any, cast

from app.tenancy.model import V1Config, V1PlatformMapping
from app.v1.tenant_mapping import TenantMapping

TENANT = uuid.uuid4()


def compiled_type(*keys: str) -> Any:
    """A stand-in for a CompiledType version: its fields by id, each with its key."""
    fields = {f"id-{key}": SimpleNamespace(definition=SimpleNamespace(key=key, id=f"id-{key}")) for key in keys}
    return SimpleNamespace(fields=fields, definition=SimpleNamespace(workflow=None))


class Types:
    def __init__(self, current: Any) -> None:
        self.current = current

    async def by_prefix(self, _tenant: uuid.UUID, _prefix: str) -> Any:
        return self.current


class Registry:
    def __init__(self, config: V1Config) -> None:
        self.config = config

    def tenant(self, _tenant: uuid.UUID) -> Any:
        return SimpleNamespace(config=SimpleNamespace(v1=self.config))


async def test_the_platform_mapping_is_reused_until_the_type_or_the_tenant_file_changes() -> None:
    registry, types = Registry(V1Config()), Types(compiled_type("title", "priority", "browser"))
    mappings = TenantMapping(cast(Any, registry), cast(Any, types))
    first = await mappings.platform(TENANT)
    assert first is not None and sorted(first.custom_fields) == ["browser"]
    assert await mappings.platform(TENANT) is first

    types.current = compiled_type("title", "priority", "browser", "os")  # a new version of the type
    second = await mappings.platform(TENANT)
    assert second is not None and second is not first and sorted(second.custom_fields) == ["browser", "os"]
    assert await mappings.platform(TENANT) is second

    registry.config = V1Config(platform=V1PlatformMapping(priorities=(("low", "minor"),)))  # the file reloaded
    third = await mappings.platform(TENANT)
    assert third is not None and third is not second and third.priorities == {"low": "minor"}


async def test_the_ticket_mapping_is_reused_until_the_type_changes() -> None:
    types = Types(compiled_type("title", "description"))
    mappings = TenantMapping(cast(Any, Registry(V1Config())), cast(Any, types))
    first = await mappings.tickets(TENANT)
    assert sorted(first.members) == ["description", "title"]
    assert await mappings.tickets(TENANT) is first
    types.current = compiled_type("title", "description", "category")
    second = await mappings.tickets(TENANT)
    assert second is not first and sorted(second.members) == ["category", "description", "title"]
