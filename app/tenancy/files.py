"""Reads tenants/*.toml, validates each against schemas/tenant.schema.json, and resolves realm keys.

Every refusal names the file and the field, so a bad file is fixed from the message alone.
"""

from __future__ import annotations

import json
import re
import tomllib
import uuid
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

from app.config import PROJECT_ROOT
from app.schema_validation import json_path, safe_validator
from app.tenancy.devkeys import builtin_keys, ensure_dev_key, public_jwk
from app.tenancy.model import (
    DEFAULT_PLANS,
    V1_PLATFORM_FIELDS,
    V1_PRIORITIES,
    V1_STATUSES,
    V1_TICKET_FIELDS,
    AttachmentLimits,
    DeclaredWebhook,
    RateLimits,
    RealmConfig,
    RoleMapping,
    StateSeed,
    TenantConfig,
    V1Config,
    V1PlatformMapping,
    V1TicketMapping,
)

TENANT_SCHEMA_PATH = PROJECT_ROOT / "schemas" / "tenant.schema.json"
DEFAULT_TENANT_CLAIM = "tenant_id"
DEFAULT_ALGORITHMS = ("RS256",)


# Why a public JWK cannot verify any of the given algorithms, or None. Supplied by the caller (auth's JWT module):
# tenancy sits below auth and knows realms and their key documents, not how keys are parsed.
SigningKeyCheck = Callable[[dict[str, Any], tuple[str, ...]], str | None]


class TenantFileError(Exception):
    """A tenant file cannot be used. The message starts with the file name and names the field."""


@cache
def _validator() -> Any:
    schema = json.loads(TENANT_SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return safe_validator(schema)


def load_tenant_files(tenants_dir: Path, data_dir: Path, check_key: SigningKeyCheck) -> list[TenantConfig]:
    """Load every tenant file; refuse the whole set on the first invalid file or cross-file conflict."""
    if not tenants_dir.is_dir():
        raise TenantFileError(f"{tenants_dir}: tenants folder not found")
    files = sorted(tenants_dir.glob("*.toml"))
    if not files:
        raise TenantFileError(f"{tenants_dir}: no tenant files (*.toml)")
    tenants = [load_tenant_file(path, data_dir, check_key) for path in files]
    _check_unique(files, tenants, "id", lambda t: [str(t.id)])
    _check_unique(files, tenants, "slug", lambda t: [t.slug])
    _check_unique(files, tenants, "realms.issuer", lambda t: [r.issuer for r in t.realms])
    _check_unique(files, tenants, "realms.name (of a builtin realm)", lambda t: [r.name for r in t.realms if r.builtin])
    return tenants


def _check_unique(files: list[Path], tenants: list[TenantConfig], field: str, values: Any) -> None:
    seen: dict[str, Path] = {}
    for path, tenant in zip(files, tenants, strict=True):
        for value in values(tenant):
            if value in seen:
                raise TenantFileError(f"{path.name}: {field}: {value!r} is already used by {seen[value].name}")
            seen[value] = path


def load_tenant_file(path: Path, data_dir: Path, check_key: SigningKeyCheck) -> TenantConfig:
    name = path.name
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise TenantFileError(f"{name}: cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TenantFileError(f"{name}: not valid TOML: {exc}") from None
    error = best_match(_validator().iter_errors(document))
    if error is not None:
        raise TenantFileError(f"{name}: {json_path(error.absolute_path) or '(top level)'}: {error.message}")

    realms: list[RealmConfig] = []
    for index, realm in enumerate(document["realms"]):
        field = f"realms[{index}]"
        if any(other.name == realm["name"] for other in realms):
            raise TenantFileError(f"{name}: {field}.name: realm {realm['name']!r} is defined twice")
        realms.append(_resolve_realm(path, field, realm, document["slug"], data_dir, check_key))
    if sum(1 for realm in realms if realm.builtin) > 1:
        raise TenantFileError(f"{name}: realms: at most one realm may be builtin (sign-in names the tenant only)")
    roles = document["roles"]
    return TenantConfig(
        id=uuid.UUID(document["id"]),
        slug=document["slug"],
        name=document["name"],
        tenant_claim=document.get("tenant_claim", DEFAULT_TENANT_CLAIM),
        roles=RoleMapping(
            read=tuple(sorted(roles["read"])),
            write=tuple(sorted(roles["write"])),
            admin=tuple(sorted(roles["admin"])),
            support=roles["support"],
            customer=tuple(sorted(roles.get("customer", ()))),
            comment=tuple(sorted(roles["comment"])) if "comment" in roles else None,
            delete=tuple(sorted(roles["delete"])) if "delete" in roles else None,
        ),
        realms=tuple(realms),
        ticket_types=tuple(document.get("ticket_types", ())),
        states=_states(path, document.get("states", ())),
        allowed_origins=_allowed_origins(path, document.get("cors", {}).get("allowed_origins", ())),
        disabled=document.get("disabled", False),
        attachments=_attachment_limits(document.get("attachments", {})),
        webhooks=_webhooks(path, document.get("webhooks", ())),
        rate_limits=_rate_limits(path, document.get("rate_limits", {})),
        v1=_v1(document.get("v1", {})),
    )


def _v1(section: dict[str, Any]) -> V1Config:
    """The file's [v1], each setting defaulting on its own (the schema has checked the names and values)."""
    tickets = section.get("tickets", {})
    fields = {name: name for name in V1_TICKET_FIELDS} | tickets.get("fields", {})
    return V1Config(
        tickets=V1TicketMapping(
            ticket_type=tickets.get("ticket_type", V1TicketMapping().ticket_type),
            fields=tuple(sorted(fields.items())),
        ),
        platform=_v1_platform(section.get("platform", {})),
        permissions=tuple(
            sorted((name, tuple(sorted(roles))) for name, roles in section.get("permissions", {}).items())
        ),
    )


def _v1_platform(section: dict[str, Any]) -> V1PlatformMapping:
    """The file's [v1.platform] (seed 004), each setting defaulting on its own; a priority or status the file leaves
    out keeps its default mapping."""
    fields = {name: name for name in V1_PLATFORM_FIELDS} | section.get("fields", {})
    priorities = dict(V1_PRIORITIES) | section.get("priorities", {})
    statuses = dict(V1_STATUSES) | {name: tuple(states) for name, states in section.get("statuses", {}).items()}
    return V1PlatformMapping(
        ticket_type=section.get("ticket_type", V1PlatformMapping().ticket_type),
        fields=tuple(sorted(fields.items())),
        # In the seed's order (low to critical; open to closed), which the answers' documentation follows.
        priorities=tuple((name, priorities[name]) for name, _ in V1_PRIORITIES),
        statuses=tuple((name, statuses[name]) for name, _ in V1_STATUSES),
    )


def _attachment_limits(section: dict[str, Any]) -> AttachmentLimits:
    """The file's [attachments], each setting defaulting on its own (the schema has checked their values)."""
    defaults = AttachmentLimits()
    return AttachmentLimits(
        max_file_bytes=section.get("max_file_bytes", defaults.max_file_bytes),
        max_ticket_bytes=section.get("max_ticket_bytes", defaults.max_ticket_bytes),
        allowed_types=tuple(sorted(section.get("allowed_types", defaults.allowed_types))),
    )


def _webhooks(path: Path, entries: list[dict[str, Any]]) -> tuple[DeclaredWebhook, ...]:
    declared: list[DeclaredWebhook] = []
    for index, entry in enumerate(entries):
        if any(other.name == entry["name"] for other in declared):
            raise TenantFileError(f"{path.name}: webhooks[{index}].name: {entry['name']!r} appears twice")
        events = entry.get("events")
        declared.append(DeclaredWebhook(**{**entry, "events": None if events is None else tuple(sorted(events))}))
    return tuple(declared)


def _rate_limits(path: Path, section: dict[str, Any]) -> RateLimits:
    """The file's [rate_limits] with seed 004's plans added (a plan of the file's own name replaces one of them);
    every plan named must exist, so that a request never meets an unknown plan."""
    defaults = RateLimits()
    plans = {**DEFAULT_PLANS, **section.get("plans", {})}
    plan = section.get("plan", defaults.plan)
    if plan not in plans:
        raise TenantFileError(f"{path.name}: rate_limits.plan: no plan {plan!r} (plans: {', '.join(sorted(plans))})")
    clients: dict[str, str] = section.get("clients", {})
    for client, client_plan in clients.items():
        if client_plan not in plans:
            known = ", ".join(sorted(plans))
            raise TenantFileError(
                f"{path.name}: rate_limits.clients.{client}: no plan {client_plan!r} (plans: {known})"
            )
    return RateLimits(
        plan=plan,
        plans=plans,
        clients=clients,
        ticket_writes_per_minute=section.get("ticket_writes_per_minute", defaults.ticket_writes_per_minute),
    )


# An origin as browsers serialise it (RFC 6454): lowercase scheme and host (IDNs in punycode), no default port.
_ORIGIN = re.compile(
    r"(https?)://(\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)"
    r"(?::([1-9][0-9]{0,4}))?"
)
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _allowed_origins(path: Path, origins: list[str]) -> tuple[str, ...]:
    """Exact origins only: the Origin header is compared byte for byte, so anything a browser never sends would
    silently allow nothing, and a pattern would allow more than its author meant."""
    for index, origin in enumerate(origins):
        problem = _origin_problem(origin)
        if problem is not None:
            raise TenantFileError(
                f"{path.name}: cors.allowed_origins[{index}]: {origin!r} is not an exact origin "
                f"(scheme://host[:port]): {problem}"
            )
    return tuple(sorted(origins))


def _origin_problem(origin: str) -> str | None:
    if "*" in origin:
        return "wildcards are not allowed, list each origin"
    match = _ORIGIN.fullmatch(origin)
    if match is None:
        if origin != origin.lower():
            return "browsers send it in lowercase"
        if re.fullmatch(r"https?://[^/]+/.*", origin):
            return "it must not have a path or a trailing slash"
        return "the scheme must be http or https, followed by a host name or address and an optional port"
    scheme, _, port = match.groups()
    if port == _DEFAULT_PORTS[scheme]:
        return f"browsers omit the default port {port}"
    if port is not None and int(port) > 65535:
        return "the port must be at most 65535"
    return None


def _states(path: Path, entries: list[dict[str, Any]]) -> tuple[StateSeed, ...]:
    """The tenant's starting states, with the invariants the state API keeps checked up front."""
    seeds = tuple(StateSeed(**entry) for entry in entries)
    if not seeds:
        return seeds
    names = [seed.name.lower() for seed in seeds]
    by_name = {seed.name: seed for seed in seeds}
    for index, seed in enumerate(seeds):
        if names.index(seed.name.lower()) != index:
            raise TenantFileError(f"{path.name}: states[{index}].name: {seed.name!r} appears twice")
        target = by_name.get(seed.next_state) if seed.next_state is not None else None
        if seed.next_state is not None and (target is None or target is seed or not target.active):
            raise TenantFileError(f"{path.name}: states[{index}].next_state: must name another active state")
        if seed.state_type == "pending close" and seed.next_state is None:
            raise TenantFileError(f"{path.name}: states[{index}].next_state: required for a pending close state")
    for flag in ("default_create", "default_follow_up"):
        if sum(1 for seed in seeds if getattr(seed, flag) and seed.active) != 1:
            raise TenantFileError(f"{path.name}: states: exactly one active state must be {flag}")
    return seeds


def _resolve_realm(
    path: Path, field: str, realm: dict[str, Any], slug: str, data_dir: Path, check_key: SigningKeyCheck
) -> RealmConfig:
    algorithms = tuple(realm.get("algorithms", DEFAULT_ALGORITHMS))
    keys = realm["keys"]
    source = f"{field}.keys.{next(iter(keys))}"
    if realm.get("kind") == "builtin":
        return _resolve_builtin_realm(path, field, realm, slug, data_dir, check_key)
    if "private_key_file" in keys:
        raise TenantFileError(f"{path.name}: {source}: only a builtin realm signs with a private key of its own")
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None
    if "generate" in keys:
        if keys["generate"] not in algorithms:
            raise TenantFileError(f"{path.name}: {source}: {keys['generate']} is not in the realm's algorithms")
        jwks = {"keys": [public_jwk(ensure_dev_key(data_dir, slug, realm["name"], keys["generate"]))]}
    elif "jwks_file" in keys:
        jwks = _read_jwks_file(path, source, path.parent / keys["jwks_file"])
    elif "jwks" in keys:
        jwks = keys["jwks"]
    else:
        jwks_url = keys["jwks_url"]
    if jwks is not None:
        _check_keys(path, source, jwks, algorithms, check_key)
    return RealmConfig(
        name=realm["name"],
        issuer=realm["issuer"],
        audience=realm["audience"],
        algorithms=algorithms,
        jwks=jwks,
        jwks_url=jwks_url,
        dev_key_algorithm=keys.get("generate"),
    )


def _resolve_builtin_realm(
    path: Path, field: str, realm: dict[str, Any], slug: str, data_dir: Path, check_key: SigningKeyCheck
) -> RealmConfig:
    """A realm whose tokens this service issues: it publishes the public halves of its signing keys (inline, like
    any realm's, so they are verified by the same code) and names the key it signs with."""
    name, keys = realm["name"], realm["keys"]
    algorithms = tuple(realm.get("algorithms", DEFAULT_ALGORITHMS))
    source = f"{field}.keys.{next(iter(keys))}"
    if not realm["issuer"].endswith(f"/realms/{name}"):
        raise TenantFileError(
            f"{path.name}: {field}.issuer: a builtin realm's issuer is the URL of its endpoints and must end with "
            f"/realms/{name}"
        )
    private_key_file: str | None = None
    if "generate" in keys:
        if keys["generate"] not in algorithms:
            raise TenantFileError(f"{path.name}: {source}: {keys['generate']} is not in the realm's algorithms")
        pems = builtin_keys(data_dir, slug, name, keys["generate"])
    elif "private_key_file" in keys:
        key_path = (path.parent / keys["private_key_file"]).resolve()
        try:
            pems = [key_path.read_text(encoding="utf-8")]
        except (OSError, UnicodeDecodeError) as exc:
            raise TenantFileError(f"{path.name}: {source}: cannot read {key_path}: {exc}") from None
        private_key_file = str(key_path)
    else:
        raise TenantFileError(
            f"{path.name}: {source}: a builtin realm signs its own tokens: keys must be generate or private_key_file"
        )
    try:
        published = [public_jwk(pem) for pem in pems]
    except (ValueError, TypeError) as exc:
        raise TenantFileError(f"{path.name}: {source}: not a usable private key: {exc}") from None
    jwks = {"keys": published}
    _check_keys(path, source, jwks, algorithms, check_key)
    return RealmConfig(
        name=name,
        issuer=realm["issuer"],
        audience=realm["audience"],
        algorithms=algorithms,
        jwks=jwks,
        kind="builtin",
        signing_kid=published[0]["kid"],
        private_key_file=private_key_file,
    )


def _read_jwks_file(path: Path, field: str, jwks_path: Path) -> dict[str, Any]:
    try:
        jwks = json.loads(jwks_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TenantFileError(f"{path.name}: {field}: cannot read {jwks_path}: {exc.strerror}") from None
    except ValueError as exc:
        raise TenantFileError(f"{path.name}: {field}: {jwks_path} is not JSON: {exc}") from None
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise TenantFileError(f"{path.name}: {field}: {jwks_path} is not a JWKS with a non-empty 'keys' list")
    return jwks


def _check_keys(
    path: Path, field: str, jwks: dict[str, Any], algorithms: tuple[str, ...], check_key: SigningKeyCheck
) -> None:
    kids: set[str] = set()
    for index, data in enumerate(jwks["keys"]):
        where = f"{path.name}: {field}.keys[{index}]"
        if not isinstance(data, dict):
            raise TenantFileError(f"{where}: is not a JSON object")
        problem = check_key(data, algorithms)
        if problem is not None:
            raise TenantFileError(f"{where}: {problem}")
        if data["kid"] in kids:
            raise TenantFileError(f"{where}.kid: {data['kid']!r} appears twice")
        kids.add(data["kid"])
