"""Request headers to a Principal, against an in-memory tenant registry with inline keys (no database, no network).

Order is part of the contract: the token first (401), then the realm named by `realmname` (401), then `x-tenantid`
(404 "Tenant not found")."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import msgspec
import pytest

import app.auth.authenticator as authenticator_module
import app.auth.jwt as jwt_module
from app.auth.authenticator import Authenticator
from app.auth.principal import Principal
from app.errors import AuthenticationRequired, InputValidationFailure, InvalidToken, RealmRequired, TenantNotFound
from app.tenancy.model import RealmConfig, RoleMapping, TenantConfig
from app.tenancy.registry import TenantRegistry
from tests.support import AUDIENCE, SigningKey, pyjwt_sign, tamper

ALPHA_ID = uuid.UUID("11111111-1111-4111-8111-111111111111")
BETA_ID = uuid.UUID("22222222-2222-4222-8222-222222222222")
ALPHA_ISSUER = "https://idp.alpha.test/realms/alpha-main"
PARTNERS_ISSUER = "https://idp.alpha.test/realms/alpha-partners"
BETA_ISSUER = "https://idp.beta.test/realms/beta-main"
LEEWAY = 30

ALPHA_KEY = SigningKey("RS256")
PARTNERS_KEY = SigningKey("ES256")
BETA_KEY = SigningKey("ES256")


def realm(name: str, issuer: str, key: SigningKey) -> RealmConfig:
    return RealmConfig(
        name=name, issuer=issuer, audience=AUDIENCE, algorithms=(key.algorithm,), jwks={"keys": [key.jwk]}
    )


ALPHA = TenantConfig(
    id=ALPHA_ID,
    slug="alpha",
    name="Alpha",
    tenant_claim="tenant_id",
    roles=RoleMapping(
        read=("viewer", "agent", "admin"),
        write=("agent", "admin"),
        admin=("admin",),
        support="support",
        customer=("customer",),
    ),
    realms=(
        realm("alpha-main", ALPHA_ISSUER, ALPHA_KEY),
        realm("alpha-partners", PARTNERS_ISSUER, PARTNERS_KEY),
    ),
)
BETA = TenantConfig(
    id=BETA_ID,
    slug="beta",
    name="Beta",
    tenant_claim="org",
    roles=RoleMapping(
        read=("reader", "agent"),
        write=("agent",),
        admin=("boss",),
        support="helpdesk",
        comment=("reader",),
        delete=("agent",),
    ),
    realms=(realm("beta-main", BETA_ISSUER, BETA_KEY),),
)


async def no_database() -> list[TenantConfig]:
    raise AssertionError("these tests fill the registry with replace(), never from the database")


@pytest.fixture
def registry() -> TenantRegistry:
    registry = TenantRegistry(no_database)
    registry.replace([ALPHA, BETA])
    return registry


def no_network(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"inline keys need no fetch, but {request.url} was requested")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # Required by the constructor; inline keys never use it (and a mock transport skips building an SSL context).
    async with httpx.AsyncClient(transport=httpx.MockTransport(no_network)) as client:
        yield client


def make_authenticator(registry: TenantRegistry, http: httpx.AsyncClient, cache_size: int = 16) -> Authenticator:
    return Authenticator(
        registry,
        http,
        leeway_seconds=LEEWAY,
        cache_size=cache_size,
        jwks_min_refresh_seconds=60,
        jwks_timeout_seconds=1,
    )


@pytest.fixture
def authenticator(registry: TenantRegistry, http: httpx.AsyncClient) -> Authenticator:
    return make_authenticator(registry, http)


@pytest.fixture
def verify_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token the authenticator verified cryptographically (it caches what it verified)."""
    calls: list[str] = []
    real_verify = jwt_module.verify

    def counting(token: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(token)
        return real_verify(token, *args, **kwargs)

    monkeypatch.setattr(jwt_module, "verify", counting)
    return calls


def alpha_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ALPHA_ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "iat": now,
        "exp": now + 600,
        "scope": "tickets:read tickets:write",
        "realm_access": {"roles": ["agent"]},
        "tenant_id": str(ALPHA_ID),
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def alpha_token(**changes: Any) -> str:
    return pyjwt_sign(alpha_claims(**changes), ALPHA_KEY)


def headers(token: str | None = None, **overrides: str | None) -> dict[str, str]:
    values: dict[str, str | None] = {
        "authorization": f"Bearer {token or alpha_token()}",
        "realmname": "alpha-main",
        "x-tenantid": str(ALPHA_ID),
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


# --- refusals, in contract order -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("Bearer", id="scheme-only"),
        pytest.param("Bearer    ", id="blank-token"),
        pytest.param("Basic dXNlcjpwYXNz", id="basic"),
        pytest.param("Token abc.def.ghi", id="other-scheme"),
    ],
)
async def test_authentication_required(authenticator: Authenticator, authorization: str | None) -> None:
    with pytest.raises(AuthenticationRequired) as caught:
        await authenticator.authenticate(headers(authorization=authorization))
    assert caught.value.status == 401
    assert caught.value.headers == {"WWW-Authenticate": 'Bearer realm="ticketing"'}


def beta_token(**changes: Any) -> str:
    claims = alpha_claims(iss=BETA_ISSUER, org=str(BETA_ID), tenant_id=None, **changes)
    return pyjwt_sign(claims, BETA_KEY)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("not-a-token", id="garbage"),
        pytest.param("a.b.c", id="not-json"),
        pytest.param(tamper(alpha_token(), sub="admin"), id="tampered"),
        pytest.param(alpha_token(exp=int(time.time()) - LEEWAY - 60), id="expired"),
        pytest.param(alpha_token(aud="another-api"), id="wrong-audience"),
        pytest.param(pyjwt_sign(alpha_claims(iss="https://unknown.test/realms/x"), ALPHA_KEY), id="unknown-issuer"),
        pytest.param(pyjwt_sign(alpha_claims(), ALPHA_KEY, kid="unknown-kid"), id="unknown-kid"),
        pytest.param(pyjwt_sign(alpha_claims(), BETA_KEY, kid=ALPHA_KEY.kid), id="signed-by-another-realms-key"),
        pytest.param(
            pyjwt_sign(alpha_claims(), ALPHA_KEY, algorithm="RS512"), id="algorithm-not-accepted-by-the-realm"
        ),
        pytest.param(pyjwt_sign(alpha_claims(iss=PARTNERS_ISSUER), ALPHA_KEY), id="key-of-a-sibling-realm"),
        pytest.param(alpha_token(tenant_id=None), id="no-tenant-claim"),
        pytest.param(alpha_token(tenant_id=7), id="tenant-claim-not-text"),
    ],
)
async def test_invalid_token(authenticator: Authenticator, token: str) -> None:
    with pytest.raises(InvalidToken) as caught:
        await authenticator.authenticate(headers(token))
    assert caught.value.status == 401
    assert caught.value.headers == {"WWW-Authenticate": 'Bearer realm="ticketing", error="invalid_token"'}


@pytest.mark.parametrize("realmname", [pytest.param(None, id="missing"), pytest.param("", id="empty")])
async def test_a_valid_token_without_realmname_is_told_the_header_is_missing(
    authenticator: Authenticator, realmname: str | None
) -> None:
    with pytest.raises(RealmRequired) as caught:
        await authenticator.authenticate(headers(realmname=realmname))
    assert (caught.value.status, caught.value.code) == (401, "AUTHENTICATION_REQUIRED")
    assert caught.value.message == "The realmname header is required: the name of the realm that issued the token"
    assert caught.value.headers == {"WWW-Authenticate": 'Bearer realm="ticketing", error="invalid_request"'}


async def test_an_invalid_token_without_realmname_is_an_invalid_token(authenticator: Authenticator) -> None:
    # The token is checked first: a missing realmname says nothing about a token that is not valid.
    with pytest.raises(InvalidToken):
        await authenticator.authenticate(headers(tamper(alpha_token(), sub="admin"), realmname=None))


@pytest.mark.parametrize(
    "realmname",
    [
        pytest.param("alpha-partners", id="sibling-realm-of-the-tenant"),
        pytest.param("beta-main", id="realm-of-another-tenant"),
        pytest.param("ALPHA-MAIN", id="other-case"),
    ],
)
async def test_realmname_must_name_the_tokens_realm(authenticator: Authenticator, realmname: str | None) -> None:
    with pytest.raises(InvalidToken):
        await authenticator.authenticate(headers(realmname=realmname))


@pytest.mark.parametrize(
    "tenant_header",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param(str(BETA_ID), id="another-tenant"),
        pytest.param(ALPHA_ID.hex, id="no-hyphens"),
        pytest.param(f"{{{ALPHA_ID}}}", id="braces"),
        pytest.param(f"urn:uuid:{ALPHA_ID}", id="urn"),
        pytest.param(f" {ALPHA_ID}", id="leading-space"),
        pytest.param(f"{ALPHA_ID}\n", id="trailing-newline"),
        pytest.param("alpha", id="slug"),
        pytest.param("00000000-0000-0000-0000-000000000000", id="nil-uuid"),
    ],
)
async def test_tenant_not_found(authenticator: Authenticator, tenant_header: str | None) -> None:
    with pytest.raises(TenantNotFound) as caught:
        await authenticator.authenticate(headers(**{"x-tenantid": tenant_header}))
    assert caught.value.status == 404
    assert caught.value.message == "Tenant not found"


async def test_upper_case_tenant_id_is_the_same_tenant(authenticator: Authenticator) -> None:
    principal = await authenticator.authenticate(headers(**{"x-tenantid": str(ALPHA_ID).upper()}))
    assert principal.tenant_id == ALPHA_ID


async def test_token_claiming_another_tenant_is_not_found(authenticator: Authenticator) -> None:
    # The header agrees with the token's claim, but the realm belongs to alpha: a realm cannot speak for beta.
    token = alpha_token(tenant_id=str(BETA_ID))
    with pytest.raises(TenantNotFound):
        await authenticator.authenticate(headers(token, **{"x-tenantid": str(BETA_ID)}))
    with pytest.raises(TenantNotFound):
        await authenticator.authenticate(headers(token))


async def test_token_claim_that_is_not_a_uuid_is_not_found(authenticator: Authenticator) -> None:
    with pytest.raises(TenantNotFound):
        await authenticator.authenticate(headers(alpha_token(tenant_id="alpha")))


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        pytest.param(
            {"authorization": "Bearer garbage", "realmname": "beta-main", "x-tenantid": "x"},
            InvalidToken,
            id="token-before-realm-and-tenant",
        ),
        pytest.param({"realmname": "beta-main", "x-tenantid": "x"}, InvalidToken, id="realm-before-tenant"),
        pytest.param(
            {"authorization": None, "realmname": "beta-main"}, AuthenticationRequired, id="no-token-before-realm"
        ),
        pytest.param({"x-tenantid": "x", "issupportrequest": "maybe"}, TenantNotFound, id="tenant-before-support-flag"),
    ],
)
async def test_refusal_order(authenticator: Authenticator, overrides: dict[str, str | None], error: type) -> None:
    with pytest.raises(error):
        await authenticator.authenticate(headers(**overrides))


# --- the principal ---------------------------------------------------------------------------------------------


async def test_principal_of_an_alpha_agent(authenticator: Authenticator) -> None:
    issued = int(time.time()) - 5
    token = alpha_token(preferred_username="ada", iat=issued)
    assert await authenticator.authenticate(headers(token)) == Principal(
        subject="user-1",
        tenant_id=ALPHA_ID,
        realm="alpha-main",
        roles=frozenset({"agent"}),
        scopes=frozenset({"tickets:read", "tickets:write"}),
        permissions=frozenset({"read", "write", "comment"}),
        service_account=False,
        support_request=False,
        username="ada",
        issued_at=float(issued),
    )


@pytest.mark.parametrize(
    ("roles", "permissions"),
    [
        pytest.param(["viewer"], {"read"}, id="viewer"),
        # By default the write and customer roles may comment, and the admin roles may delete.
        pytest.param(["agent"], {"read", "write", "comment"}, id="agent"),
        pytest.param(["admin"], {"read", "write", "admin", "comment", "delete"}, id="admin"),
        pytest.param(["customer"], {"customer", "comment"}, id="customer"),
        pytest.param(["viewer", "unknown"], {"read"}, id="unknown-roles-ignored"),
        pytest.param(["boss"], set(), id="another-tenants-admin-role"),
        pytest.param(["Admin"], set(), id="roles-are-case-sensitive"),
        pytest.param([], set(), id="no-roles"),
        pytest.param(["admin", 5, None], {"read", "write", "admin", "comment", "delete"}, id="non-text-roles-ignored"),
    ],
)
async def test_alpha_role_mapping(authenticator: Authenticator, roles: list[Any], permissions: set[str]) -> None:
    principal = await authenticator.authenticate(headers(alpha_token(realm_access={"roles": roles})))
    assert principal.permissions == permissions
    # Without an agent-level permission (read, write or admin) a caller sees only its own tickets.
    assert principal.customer_only == (not permissions & {"read", "write", "admin"})
    assert principal.roles == {role for role in roles if isinstance(role, str)}


@pytest.mark.parametrize(
    ("roles", "permissions"),
    [
        # Beta names its comment and delete roles itself.
        pytest.param(["reader"], {"read", "comment"}, id="reader"),
        pytest.param(["agent"], {"read", "write", "delete"}, id="agent"),
        pytest.param(["boss"], {"admin"}, id="boss-admin-only"),
        pytest.param(["admin"], set(), id="alphas-admin-role-means-nothing"),
        pytest.param(["customer"], set(), id="alphas-customer-role-means-nothing"),
    ],
)
async def test_beta_role_mapping(authenticator: Authenticator, roles: list[str], permissions: set[str]) -> None:
    principal = await authenticator.authenticate(
        headers(beta_token(realm_access={"roles": roles}), realmname="beta-main", **{"x-tenantid": str(BETA_ID)})
    )
    assert principal.tenant_id == BETA_ID
    assert principal.realm == "beta-main"
    assert principal.permissions == permissions


async def test_a_customer_who_also_has_an_agent_role_is_an_agent(authenticator: Authenticator) -> None:
    principal = await authenticator.authenticate(headers(alpha_token(realm_access={"roles": ["customer", "viewer"]})))
    assert principal.permissions == {"customer", "comment", "read"}
    assert principal.customer_only is False


@pytest.mark.parametrize(
    "realm_access",
    [
        pytest.param(None, id="missing"),
        pytest.param(["admin"], id="not-an-object"),
        pytest.param({"roles": "admin"}, id="roles-not-a-list"),
    ],
)
async def test_malformed_roles_grant_nothing(authenticator: Authenticator, realm_access: Any) -> None:
    principal = await authenticator.authenticate(headers(alpha_token(realm_access=realm_access)))
    assert principal.roles == frozenset()
    assert principal.permissions == frozenset()


@pytest.mark.parametrize(
    ("scope", "scopes"),
    [
        pytest.param("a b  c", {"a", "b", "c"}, id="space-separated"),
        pytest.param("", set(), id="empty"),
        pytest.param(None, set(), id="missing"),
        pytest.param(["a", "b"], set(), id="not-text"),
    ],
)
async def test_scopes(authenticator: Authenticator, scope: Any, scopes: set[str]) -> None:
    principal = await authenticator.authenticate(headers(alpha_token(scope=scope)))
    assert principal.scopes == scopes


async def test_es256_realm_of_the_same_tenant(authenticator: Authenticator) -> None:
    token = pyjwt_sign(alpha_claims(iss=PARTNERS_ISSUER), PARTNERS_KEY)
    principal = await authenticator.authenticate(headers(token, realmname="alpha-partners"))
    assert (principal.tenant_id, principal.realm) == (ALPHA_ID, "alpha-partners")


@pytest.mark.parametrize(
    ("extra", "service_account"),
    [
        pytest.param({}, False, id="user"),
        pytest.param({"client_id": "robot"}, True, id="client_id"),
        pytest.param({"clientId": "robot"}, True, id="clientId"),
        pytest.param({"client_id": 5}, False, id="client_id-not-text"),
        pytest.param({"azp": "web-app"}, False, id="azp-is-not-a-service-account"),
    ],
)
async def test_service_account_detection(
    authenticator: Authenticator, extra: dict[str, Any], service_account: bool
) -> None:
    principal = await authenticator.authenticate(headers(alpha_token(**extra)))
    assert principal.service_account is service_account
    assert principal.subject == "user-1"


@pytest.mark.parametrize(
    ("roles", "flag", "support_request"),
    [
        pytest.param(["agent", "support"], "true", True, id="support-role-and-true"),
        pytest.param(["agent", "support"], " TRUE ", True, id="case-and-space-insensitive"),
        pytest.param(["agent", "support"], "false", False, id="false"),
        pytest.param(["agent", "support"], None, False, id="absent"),
        pytest.param(["agent"], "true", False, id="without-the-support-role"),
        pytest.param(["agent", "helpdesk"], "true", False, id="another-tenants-support-role"),
    ],
)
async def test_support_request(
    authenticator: Authenticator, roles: list[str], flag: str | None, support_request: bool
) -> None:
    token = alpha_token(realm_access={"roles": roles})
    principal = await authenticator.authenticate(headers(token, issupportrequest=flag))
    assert principal.support_request is support_request


# An empty value is refused rather than read as false, as the OpenAPI document's pattern says; so are blanks other
# than HTTP's optional whitespace (str.strip() would have removed a no-break space).
@pytest.mark.parametrize("flag", ["yes", "1", "True!", "tru e", "", " ", "true\xa0"])
async def test_invalid_support_flag(authenticator: Authenticator, flag: str) -> None:
    with pytest.raises(InputValidationFailure) as caught:
        await authenticator.authenticate(headers(issupportrequest=flag))
    assert caught.value.message == "Invalid request headers"
    assert caught.value.reason == {"issupportrequest": "must be true or false"}


# --- the token cache -------------------------------------------------------------------------------------------


async def test_a_token_is_verified_once(authenticator: Authenticator, verify_calls: list[str]) -> None:
    token = alpha_token()
    first = await authenticator.authenticate(headers(token))
    second = await authenticator.authenticate(headers(token))
    assert first == second
    assert verify_calls == [token]


async def test_the_cache_does_not_skip_header_checks(authenticator: Authenticator, verify_calls: list[str]) -> None:
    token = alpha_token(realm_access={"roles": ["agent", "support"]})
    assert (await authenticator.authenticate(headers(token, issupportrequest="true"))).support_request is True
    assert (await authenticator.authenticate(headers(token, issupportrequest="false"))).support_request is False
    with pytest.raises(TenantNotFound):
        await authenticator.authenticate(headers(token, **{"x-tenantid": str(BETA_ID)}))
    with pytest.raises(InvalidToken):
        await authenticator.authenticate(headers(token, realmname="alpha-partners"))
    with pytest.raises(InputValidationFailure):
        await authenticator.authenticate(headers(token, issupportrequest="maybe"))
    assert verify_calls == [token]


async def test_a_refused_token_is_not_cached(authenticator: Authenticator, verify_calls: list[str]) -> None:
    token = alpha_token(aud="another-api")
    for _ in range(2):
        with pytest.raises(InvalidToken):
            await authenticator.authenticate(headers(token))
    assert verify_calls == [token, token]


async def test_least_recently_verified_tokens_leave_a_full_cache(
    registry: TenantRegistry, http: httpx.AsyncClient, verify_calls: list[str]
) -> None:
    small = make_authenticator(registry, http, cache_size=1)
    first, second = alpha_token(sub="a"), alpha_token(sub="b")
    for token in (first, first, second, first):
        await small.authenticate(headers(token))
    assert verify_calls == [first, second, first]


async def test_a_cached_token_expires(
    authenticator: Authenticator, verify_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = alpha_claims()
    token = pyjwt_sign(claims, ALPHA_KEY)
    await authenticator.authenticate(headers(token))
    await authenticator.authenticate(headers(token))
    # The authenticator's clock (only its own: python-jose reads another) nears, then passes exp plus the leeway.
    expires = claims["exp"]
    monkeypatch.setattr(authenticator_module, "time", SimpleNamespace(time=lambda: expires + LEEWAY - 5))
    await authenticator.authenticate(headers(token))
    assert verify_calls == [token]
    monkeypatch.setattr(authenticator_module, "time", SimpleNamespace(time=lambda: expires + LEEWAY + 1))
    await authenticator.authenticate(headers(token))
    assert verify_calls == [token, token]


async def test_an_unchanged_registry_keeps_the_cache(
    authenticator: Authenticator, registry: TenantRegistry, verify_calls: list[str]
) -> None:
    token = alpha_token()
    await authenticator.authenticate(headers(token))
    generation = registry.generation
    registry.replace([BETA, ALPHA])
    assert registry.generation == generation
    await authenticator.authenticate(headers(token))
    assert verify_calls == [token]


async def test_a_registry_change_drops_the_cache(
    authenticator: Authenticator, registry: TenantRegistry, verify_calls: list[str]
) -> None:
    token = alpha_token(realm_access={"roles": ["viewer"]})
    assert (await authenticator.authenticate(headers(token))).permissions == {"read"}
    # The tenant now grants viewers write access: the next request sees it, after verifying the token again.
    changed = TenantConfig(
        id=ALPHA.id,
        slug=ALPHA.slug,
        name=ALPHA.name,
        tenant_claim=ALPHA.tenant_claim,
        roles=RoleMapping(read=("viewer",), write=("viewer",), admin=(), support="support"),
        realms=ALPHA.realms,
    )
    registry.replace([changed, BETA])
    assert (await authenticator.authenticate(headers(token))).permissions == {"read", "write", "comment"}
    assert verify_calls == [token, token]


async def test_a_removed_realm_stops_cached_tokens(
    authenticator: Authenticator, registry: TenantRegistry, verify_calls: list[str]
) -> None:
    token = alpha_token()
    await authenticator.authenticate(headers(token))
    registry.replace([BETA])
    with pytest.raises(InvalidToken):
        await authenticator.authenticate(headers(token))
    assert verify_calls == [token]  # refused before verification: the issuer is no longer known


async def test_a_disabled_tenant_is_not_found_even_for_cached_tokens(
    authenticator: Authenticator, registry: TenantRegistry, verify_calls: list[str]
) -> None:
    token = alpha_token()
    await authenticator.authenticate(headers(token))
    registry.replace([msgspec.structs.replace(ALPHA, disabled=True), BETA])
    with pytest.raises(TenantNotFound):
        await authenticator.authenticate(headers(token))
    # Still verified first: a forged token of the disabled tenant stays a 401, as the contract's order says.
    forged = tamper(token, sub="someone-else")
    with pytest.raises(InvalidToken):
        await authenticator.authenticate(headers(forged))
    assert verify_calls == [token, token, forged]
    # The other tenant is untouched; enabling the tenant again lets the same token in.
    beta = pyjwt_sign({**alpha_claims(iss=BETA_ISSUER, tenant_id=None), "org": str(BETA_ID)}, BETA_KEY)
    assert (
        await authenticator.authenticate(headers(beta, realmname="beta-main", **{"x-tenantid": str(BETA_ID)}))
    ).tenant_id == BETA_ID
    registry.replace([ALPHA, BETA])
    assert (await authenticator.authenticate(headers(token))).tenant_id == ALPHA_ID


async def test_a_rotated_key_stops_cached_tokens(
    authenticator: Authenticator, registry: TenantRegistry, verify_calls: list[str]
) -> None:
    token = alpha_token()
    await authenticator.authenticate(headers(token))
    rotated = realm("alpha-main", ALPHA_ISSUER, PARTNERS_KEY)
    registry.replace([TenantConfig(**{**_fields(ALPHA), "realms": (rotated, ALPHA.realms[1])}), BETA])
    with pytest.raises(InvalidToken):
        await authenticator.authenticate(headers(token))
    assert verify_calls == [token]


def _fields(config: TenantConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in config.__struct_fields__}


async def test_a_realm_removed_while_its_keys_are_fetched_leaves_nothing_cached(registry: TenantRegistry) -> None:
    """The JWKS fetch is an await: a reload can remove the realm meanwhile, and another request rebuild the key
    sets. The first request's verdict must not be cached, or every later request with its token would look up a
    key set that no longer exists."""
    url = "https://idp.alpha.test/realms/alpha-main/certs"
    fetch_started, finish_fetch = asyncio.Event(), asyncio.Event()

    async def slow_jwks(request: httpx.Request) -> httpx.Response:
        fetch_started.set()
        await finish_fetch.wait()
        return httpx.Response(200, json={"keys": [ALPHA_KEY.jwk]})

    by_url = RealmConfig(name="alpha-main", issuer=ALPHA_ISSUER, audience=AUDIENCE, algorithms=("RS256",), jwks_url=url)
    registry.replace([TenantConfig(**{**_fields(ALPHA), "realms": (by_url,)}), BETA])
    async with httpx.AsyncClient(transport=httpx.MockTransport(slow_jwks)) as http:
        authenticator = make_authenticator(registry, http)
        token = alpha_token()
        first = asyncio.create_task(authenticator.authenticate(headers(token)))
        await fetch_started.wait()
        registry.replace([BETA])
        with pytest.raises(InvalidToken):  # another request meanwhile: the key sets are rebuilt without alpha's
            await authenticator.authenticate(headers(alpha_token(sub="user-2")))
        finish_fetch.set()
        assert (await first).subject == "user-1"  # verified against the realm as it was when the request came
        with pytest.raises(InvalidToken):
            await authenticator.authenticate(headers(token))


# --- the v1 surface: tenant and realm from the token when the headers are absent -----------------------------------


async def test_the_v1_surface_takes_tenant_and_realm_from_the_token(authenticator: Authenticator) -> None:
    bare = headers(realmname=None, **{"x-tenantid": None})
    principal = await authenticator.authenticate(bare, tenant_from_token=True)
    assert (principal.tenant_id, principal.realm, principal.subject) == (ALPHA_ID, "alpha-main", "user-1")
    partners = pyjwt_sign({**alpha_claims(), "iss": PARTNERS_ISSUER}, PARTNERS_KEY)
    other_realm = await authenticator.authenticate(
        headers(partners, realmname=None, **{"x-tenantid": None}), tenant_from_token=True
    )
    assert (other_realm.tenant_id, other_realm.realm) == (ALPHA_ID, "alpha-partners")
    # A tenant claim in another claim name (beta's `org`) is that tenant's.
    beta = beta_token()
    assert (
        await authenticator.authenticate({"authorization": f"Bearer {beta}"}, tenant_from_token=True)
    ).tenant_id == (BETA_ID)


async def test_headers_sent_to_the_v1_surface_must_agree_with_the_token(authenticator: Authenticator) -> None:
    with pytest.raises(TenantNotFound):
        await authenticator.authenticate(
            headers(**{"x-tenantid": str(BETA_ID)}, realmname=None), tenant_from_token=True
        )
    with pytest.raises(InvalidToken):
        await authenticator.authenticate(
            headers(realmname="alpha-partners", **{"x-tenantid": None}), tenant_from_token=True
        )
    with pytest.raises(InvalidToken):  # a token without its tenant claim is invalid, as in v2
        await authenticator.authenticate(
            headers(alpha_token(tenant_id=None), realmname=None, **{"x-tenantid": None}), tenant_from_token=True
        )
    with pytest.raises(AuthenticationRequired):
        await authenticator.authenticate({}, tenant_from_token=True)


async def test_a_v1_principal_never_lets_a_v2_request_in_without_its_headers(authenticator: Authenticator) -> None:
    """The principal cache is keyed by the header values checked: a v1 request (no headers) leaves nothing a v2
    request without headers could reuse."""
    token = alpha_token()
    bare = headers(token, realmname=None, **{"x-tenantid": None})
    await authenticator.authenticate(bare, tenant_from_token=True)
    with pytest.raises(RealmRequired):
        await authenticator.authenticate(bare)
    with pytest.raises(TenantNotFound):
        await authenticator.authenticate(headers(token, **{"x-tenantid": None}))
