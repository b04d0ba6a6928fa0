"""Every way a token can be wrong, through the real server: each is refused, with the v2 envelope and nothing else."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from jose import jwe

from tests.support import (
    AUTHENTICATION_REQUIRED,
    BEARER_CHALLENGE,
    INVALID_TOKEN,
    INVALID_TOKEN_CHALLENGE,
    ME,
    TENANT_NOT_FOUND,
    SigningKey,
    TenantFactory,
    TenantSpec,
    auth_headers,
    claims_for,
    hs256_with_public_key,
    sign,
    tamper,
    token,
    unsigned_token,
)


@pytest.fixture(scope="module")
async def alpha(tenant_factory: TenantFactory) -> TenantSpec:
    """A tenant of this module's own with two realms: alpha-main (RS256) and alpha-partners (ES256). Module-scoped:
    these tests only read /me, and a fresh RSA key pair per test would cost about 0.1 s each."""
    return await tenant_factory.fresh("alpha", realms=[("main", "RS256"), ("partners", "ES256")])


async def test_valid_token_yields_the_principal(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    bearer = token(alpha, roles=["agent"], subject="agent-7", preferred_username="ada")
    response = await client.get(ME, headers=auth_headers(alpha, bearer))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "subject": "agent-7",
        "tenant_id": str(alpha.id),
        "realm": "alpha-main",
        "username": "ada",
        "service_account": False,
        "support_request": False,
        "roles": ["agent"],
        "scopes": ["tickets:read", "tickets:write"],
        "permissions": ["comment", "read", "write"],
        "customer_only": False,
    }
    assert response.headers["x-request-id"]


async def test_second_realm_of_the_tenant_authenticates_with_its_own_keys(
    client: httpx.AsyncClient, alpha: TenantSpec
) -> None:
    partners = alpha.realm("alpha-partners")
    bearer = sign(claims_for(alpha, partners, roles=["viewer"], scope="tickets:read"), partners.key)
    response = await client.get(ME, headers=auth_headers(alpha, bearer, realm="alpha-partners"))
    assert response.status_code == 200, response.text
    assert response.json()["realm"] == "alpha-partners"
    assert response.json()["permissions"] == ["read"]


async def test_service_account_is_recorded_under_its_own_subject(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    bearer = token(alpha, subject="sa-tenant-billing", client_id="billing-sync")
    response = await client.get(ME, headers=auth_headers(alpha, bearer))
    assert response.status_code == 200
    assert (response.json()["subject"], response.json()["service_account"]) == ("sa-tenant-billing", True)


@pytest.mark.parametrize(
    ("roles", "flag", "expected"),
    [
        (["agent", "support"], "true", True),
        (["agent", "support"], "TRUE", True),
        (["agent", "support"], "false", False),
        (["agent"], "true", False),  # asked for, but not honoured without the support role
        (["agent", "support"], None, False),
    ],
)
async def test_support_flag_is_honoured_only_with_the_support_role(
    client: httpx.AsyncClient, alpha: TenantSpec, roles: list[str], flag: str | None, expected: bool
) -> None:
    extra = {} if flag is None else {"issupportrequest": flag}
    response = await client.get(ME, headers=auth_headers(alpha, token(alpha, roles=roles), **extra))
    assert response.status_code == 200
    assert response.json()["support_request"] is expected


@pytest.mark.parametrize("flag", ["maybe", ""], ids=["maybe", "empty"])
async def test_malformed_support_flag_is_a_validation_error(
    client: httpx.AsyncClient, alpha: TenantSpec, flag: str
) -> None:
    response = await client.get(ME, headers=auth_headers(alpha, token(alpha), issupportrequest=flag))
    assert response.status_code == 400
    assert response.json() == {
        "error": True,
        "code": "INPUT_VALIDATION_FAILURE",
        "message": "Invalid request headers",
        "status": 400,
        "validationResult": {"reason": {"issupportrequest": "must be true or false"}},
    }


async def test_missing_authorization_header(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    response = await client.get(ME, headers=auth_headers(alpha, None))
    assert response.status_code == 401
    assert response.json() == AUTHENTICATION_REQUIRED
    assert response.headers["www-authenticate"] == BEARER_CHALLENGE


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Token abc", "Bearer", "bearer", "Bearer\tx"])
async def test_non_bearer_scheme(client: httpx.AsyncClient, alpha: TenantSpec, value: str) -> None:
    response = await client.get(ME, headers={**auth_headers(alpha, None), "authorization": value})
    assert response.status_code == 401
    assert response.json() == AUTHENTICATION_REQUIRED


def _expired(t: TenantSpec) -> str:
    return token(t, ttl=-120)


def _not_yet_valid(t: TenantSpec) -> str:
    return token(t, nbf=int(time.time()) + 600)


def _issued_in_future(t: TenantSpec) -> str:
    return token(t, iat=int(time.time()) + 600)


def _other_realm_of_same_tenant(t: TenantSpec) -> str:
    # Validly signed by alpha-partners, presented with realmname alpha-main.
    partners = t.realm("alpha-partners")
    return sign(claims_for(t, partners), partners.key)


def _unknown_realm_issuer(t: TenantSpec) -> str:
    return token(t, iss=t.realm("alpha-main").issuer.replace("alpha-main", "somewhere-else"))


def _issuer_of_other_realm_signed_with_this_key(t: TenantSpec) -> str:
    main = t.realm("alpha-main")
    return sign(claims_for(t, main, iss=t.realm("alpha-partners").issuer), main.key)


def _wrong_audience(t: TenantSpec) -> str:
    return token(t, aud="some-other-api")


def _no_audience(t: TenantSpec) -> str:
    realm = t.realms[0]
    claims = claims_for(t, realm)
    del claims["aud"]
    return sign(claims, realm.key)


def _no_expiry(t: TenantSpec) -> str:
    realm = t.realms[0]
    claims = claims_for(t, realm)
    del claims["exp"]
    return sign(claims, realm.key)


def _no_subject(t: TenantSpec) -> str:
    realm = t.realms[0]
    claims = claims_for(t, realm)
    del claims["sub"]
    return sign(claims, realm.key)


def _no_tenant_claim(t: TenantSpec) -> str:
    realm = t.realms[0]
    claims = claims_for(t, realm)
    del claims["tenant_id"]
    return sign(claims, realm.key)


def _alg_none(t: TenantSpec) -> str:
    return unsigned_token(claims_for(t, t.realms[0]), t.realms[0].key.kid)


def _hs256_confusion(t: TenantSpec) -> str:
    return hs256_with_public_key(claims_for(t, t.realms[0]), t.realms[0].key)


def _unknown_kid(t: TenantSpec) -> str:
    return sign(claims_for(t, t.realms[0]), t.realms[0].key, kid="no-such-kid")


def _signed_by_a_stranger(t: TenantSpec) -> str:
    return sign(claims_for(t, t.realms[0]), SigningKey("RS256"), kid=t.realms[0].key.kid)


def _tampered_payload(t: TenantSpec) -> str:
    return tamper(token(t, roles=["viewer"]), realm_access={"roles": ["admin"]})


def _tampered_signature(t: TenantSpec) -> str:
    bearer = token(t)
    return bearer[:-4] + ("AAAA" if not bearer.endswith("AAAA") else "BBBB")


def _jwe(t: TenantSpec) -> str:
    import json

    payload = json.dumps(claims_for(t, t.realms[0])).encode()
    return jwe.encrypt(payload, "0123456789abcdef", algorithm="dir", encryption="A128GCM").decode()


def _oversized(t: TenantSpec) -> str:
    return token(t, padding="x" * 9000)


def _garbage(_: TenantSpec) -> str:
    return "not-a-jwt"


def _non_json_segments(_: TenantSpec) -> str:
    return "aGVsbG8.d29ybGQ.c2ln"


def _es256_key_used_with_rs256_header(t: TenantSpec) -> str:
    # The partners realm only accepts ES256: an RS256 token claiming its issuer is refused before key lookup.
    partners = t.realm("alpha-partners")
    return sign(claims_for(t, partners), t.realm("alpha-main").key, kid=partners.key.kid)


HOSTILE_TOKENS: dict[str, Callable[[TenantSpec], str]] = {
    "expired": _expired,
    "not yet valid": _not_yet_valid,
    "issued in the future": _issued_in_future,
    "another realm of the same tenant": _other_realm_of_same_tenant,
    "unknown realm issuer": _unknown_realm_issuer,
    "issuer of another realm, signed with this realm's key": _issuer_of_other_realm_signed_with_this_key,
    "wrong audience": _wrong_audience,
    "no audience": _no_audience,
    "no expiry": _no_expiry,
    "no subject": _no_subject,
    "no tenant claim": _no_tenant_claim,
    "alg none": _alg_none,
    "HS256 signed with the realm public key": _hs256_confusion,
    "unknown kid": _unknown_kid,
    "signed by a stranger's key": _signed_by_a_stranger,
    "tampered payload": _tampered_payload,
    "tampered signature": _tampered_signature,
    "encrypted JWE": _jwe,
    "oversized": _oversized,
    "garbage": _garbage,
    "non-JSON segments": _non_json_segments,
    "algorithm the realm does not accept": _es256_key_used_with_rs256_header,
}


@pytest.mark.parametrize("make_token", HOSTILE_TOKENS.values(), ids=HOSTILE_TOKENS.keys())
async def test_hostile_token_is_refused(
    client: httpx.AsyncClient, alpha: TenantSpec, make_token: Callable[[TenantSpec], str]
) -> None:
    response = await client.get(ME, headers=auth_headers(alpha, make_token(alpha), realm="alpha-main"))
    assert response.status_code == 401, response.text
    assert response.json() == INVALID_TOKEN
    assert response.headers["www-authenticate"] == INVALID_TOKEN_CHALLENGE


async def test_missing_realmname_header(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    request_headers = auth_headers(alpha, token(alpha))
    del request_headers["realmname"]
    response = await client.get(ME, headers=request_headers)
    assert response.status_code == 401
    assert response.json() == {
        "error": True,
        "code": "AUTHENTICATION_REQUIRED",
        "message": "The realmname header is required: the name of the realm that issued the token",
        "status": 401,
    }
    assert response.headers["www-authenticate"] == 'Bearer realm="ticketing", error="invalid_request"'


async def test_token_of_another_tenant_is_tenant_not_found(
    client: httpx.AsyncClient, alpha: TenantSpec, beta: TenantSpec
) -> None:
    # A valid beta token presented for alpha: the token's tenant claim differs from x-tenantid.
    request_headers = auth_headers(beta, token(beta))
    assert request_headers["realmname"] == "beta-main"
    request_headers["x-tenantid"] = str(alpha.id)
    response = await client.get(ME, headers=request_headers)
    assert response.status_code == 404
    assert response.json() == TENANT_NOT_FOUND


async def test_tenant_claim_naming_another_tenant_is_tenant_not_found(
    client: httpx.AsyncClient, alpha: TenantSpec, beta: TenantSpec
) -> None:
    # alpha's realm signs a token claiming beta's tenant: the realm does not belong to that tenant.
    bearer = token(alpha, tenant_id=str(beta.id))
    response = await client.get(ME, headers={**auth_headers(alpha, bearer), "x-tenantid": str(beta.id)})
    assert response.status_code == 404
    assert response.json() == TENANT_NOT_FOUND


@pytest.mark.parametrize("value", ["not-a-uuid", "", "11111111-1111-4111-8111-11111111111", "' OR 1=1 --"])
async def test_malformed_tenant_header_is_tenant_not_found(
    client: httpx.AsyncClient, alpha: TenantSpec, value: str
) -> None:
    response = await client.get(ME, headers={**auth_headers(alpha, token(alpha)), "x-tenantid": value})
    assert response.status_code == 404
    assert response.json() == TENANT_NOT_FOUND


async def test_unknown_tenant_uuid_is_tenant_not_found(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    stranger = str(uuid.uuid4())
    bearer = token(alpha, tenant_id=stranger)
    response = await client.get(ME, headers={**auth_headers(alpha, bearer), "x-tenantid": stranger})
    assert response.status_code == 404
    assert response.json() == TENANT_NOT_FOUND


async def test_hostile_token_with_malformed_tenant_is_still_401(client: httpx.AsyncClient, alpha: TenantSpec) -> None:
    # Authentication comes first: a forged token learns nothing about tenants.
    response = await client.get(ME, headers={**auth_headers(alpha, _alg_none(alpha)), "x-tenantid": "nope"})
    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN


async def test_rejections_do_not_leak_tokens_into_the_log(
    client: httpx.AsyncClient, alpha: TenantSpec, caplog: pytest.LogCaptureFixture
) -> None:
    bearer = _expired(alpha)
    with caplog.at_level("DEBUG"):
        response = await client.get(ME, headers=auth_headers(alpha, bearer))
    assert response.status_code == 401
    assert any(record.name == "app.auth" for record in caplog.records)
    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert bearer not in logged
    assert bearer.split(".")[2] not in logged
