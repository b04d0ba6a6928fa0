"""JWT inspection, verification and key handling, cross-checked with an independent JOSE library (PyJWT)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from app.auth.jwt import (
    MAX_TOKEN_LENGTH,
    InvalidKey,
    TokenRejected,
    UnverifiedToken,
    VerificationKey,
    inspect,
    public_key_from_jwk,
    sign,
    signing_key_problem,
    verify,
)
from tests.support import SigningKey, b64url, hs256_with_public_key, pyjwt_sign, tamper, unsigned_token

ISSUER = "https://idp.example.test/realms/main"
AUDIENCE = "ticketing-api"
LEEWAY = 30

# Key generation is the slow part: one key of each kind for the whole module.
RSA = SigningKey("RS256")
EC = SigningKey("ES256")
OTHER_RSA = SigningKey("RS256")
OTHER_EC = SigningKey("ES256")
KEYS = {"RS256": RSA, "ES256": EC}


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims; a change to None removes the claim."""
    now = int(time.time())
    values: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + 600}
    values.update(changes)
    return {name: value for name, value in values.items() if value is not None}


def token_for(key: SigningKey, **changes: Any) -> str:
    # Signed by PyJWT with the key parsed once (fast); tokens made by our own `sign` are checked further down.
    return pyjwt_sign(claims(**changes), key)


def verified(token: str, key: SigningKey, algorithm: str | None = None) -> dict[str, Any]:
    return verify(
        token,
        public_key_from_jwk(key.jwk),
        algorithm or key.algorithm,
        issuer=ISSUER,
        audience=AUDIENCE,
        leeway_seconds=LEEWAY,
    )


def rejection(call: Callable[[], object], error: type[Exception] = TokenRejected) -> str:
    """The message of the exception `call` raises (the reason that goes to the log)."""
    with pytest.raises(error) as caught:
        call()
    return str(caught.value)


def segment(data: Any) -> str:
    return b64url(json.dumps(data).encode())


def compact(header: Any, payload: Any, signature: str = "c2ln") -> str:
    return f"{segment(header)}.{segment(payload)}.{signature}"


def p384_jwk(kid: str = "p384") -> dict[str, Any]:
    numbers = ec.generate_private_key(ec.SECP384R1()).public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-384",
        "kid": kid,
        "x": b64url(numbers.x.to_bytes(48, "big")),
        "y": b64url(numbers.y.to_bytes(48, "big")),
    }


# --- inspect ---------------------------------------------------------------------------------------------------


def test_inspect_reads_algorithm_kid_and_issuer() -> None:
    token = token_for(RSA)
    assert inspect(token) == UnverifiedToken(algorithm="RS256", kid=RSA.kid, issuer=ISSUER)


GOOD_HEADER = {"alg": "RS256", "kid": "k1", "typ": "JWT"}
GOOD_PAYLOAD = {"iss": ISSUER, "sub": "u"}


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param("a" * (MAX_TOKEN_LENGTH + 1), "token too long", id="too-long"),
        pytest.param("", "not a compact JWS", id="empty"),
        pytest.param("abc.def", "not a compact JWS", id="two-segments"),
        pytest.param("a.b.c.d.e", "not a compact JWS", id="jwe-five-segments"),
        pytest.param(compact(GOOD_HEADER, GOOD_PAYLOAD, signature=""), "not a compact JWS", id="empty-signature"),
        pytest.param(unsigned_token(GOOD_PAYLOAD, "k1"), "not a compact JWS", id="unsecured-token"),
        pytest.param(compact(GOOD_HEADER, GOOD_PAYLOAD, signature="a+b/"), "not a compact JWS", id="not-base64url"),
        pytest.param("a b.c.d", "not a compact JWS", id="whitespace"),
        pytest.param("e30.e30.e30=", "not a compact JWS", id="padding"),
        pytest.param("!!!.e30.c2ln", "not a compact JWS", id="punctuation"),
        pytest.param("bm90anNvbg.e30.c2ln", "segment is not base64url JSON", id="header-not-json"),
        pytest.param("e30.A.c2ln", "segment is not base64url JSON", id="payload-bad-length"),
        pytest.param(compact(["RS256"], GOOD_PAYLOAD), "header or payload is not a JSON object", id="header-array"),
        pytest.param(
            compact(GOOD_HEADER, [GOOD_PAYLOAD]), "header or payload is not a JSON object", id="payload-array"
        ),
        pytest.param(compact(GOOD_HEADER, "iss"), "header or payload is not a JSON object", id="payload-string"),
        pytest.param(compact(GOOD_HEADER, 5), "header or payload is not a JSON object", id="payload-number"),
        pytest.param(
            compact({**GOOD_HEADER, "alg": "none"}, GOOD_PAYLOAD), "algorithm 'none' not allowed", id="alg-none"
        ),
        pytest.param(
            compact({**GOOD_HEADER, "alg": "HS256"}, GOOD_PAYLOAD), "algorithm 'HS256' not allowed", id="alg-hs256"
        ),
        pytest.param(
            compact({**GOOD_HEADER, "alg": "PS256"}, GOOD_PAYLOAD), "algorithm 'PS256' not allowed", id="alg-unknown"
        ),
        pytest.param(
            compact({**GOOD_HEADER, "alg": "rs256"}, GOOD_PAYLOAD), "algorithm 'rs256' not allowed", id="alg-lower-case"
        ),
        pytest.param(compact({"kid": "k1"}, GOOD_PAYLOAD), "algorithm None not allowed", id="alg-missing"),
        pytest.param(
            compact({**GOOD_HEADER, "crit": ["exp"]}, GOOD_PAYLOAD),
            "critical header extensions are not supported",
            id="crit-header",
        ),
        pytest.param(compact({"alg": "RS256"}, GOOD_PAYLOAD), "no kid", id="kid-missing"),
        pytest.param(compact({**GOOD_HEADER, "kid": ""}, GOOD_PAYLOAD), "no kid", id="kid-empty"),
        pytest.param(compact({**GOOD_HEADER, "kid": 7}, GOOD_PAYLOAD), "no kid", id="kid-not-text"),
        pytest.param(compact(GOOD_HEADER, {"sub": "u"}), "no issuer", id="iss-missing"),
        pytest.param(compact(GOOD_HEADER, {"iss": ""}), "no issuer", id="iss-empty"),
        pytest.param(compact(GOOD_HEADER, {"iss": ["a"]}), "no issuer", id="iss-not-text"),
    ],
)
def test_inspect_refuses(token: str, reason: str) -> None:
    with pytest.raises(TokenRejected) as caught:
        inspect(token)
    assert str(caught.value) == reason


def test_inspect_accepts_a_token_at_the_length_limit() -> None:
    token = compact(GOOD_HEADER, {**GOOD_PAYLOAD, "pad": "x" * (MAX_TOKEN_LENGTH // 2)}, signature="")
    token += "A" * (MAX_TOKEN_LENGTH - len(token))
    assert len(token) == MAX_TOKEN_LENGTH
    assert inspect(token).kid == "k1"
    assert rejection(lambda: inspect(token + "A")) == "token too long"


def test_inspect_refuses_the_forgeries_of_the_test_helpers() -> None:
    assert rejection(lambda: inspect(hs256_with_public_key(claims(), RSA))) == "algorithm 'HS256' not allowed"


# --- verify ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_verify_returns_the_claims(algorithm: str) -> None:
    expected = claims(scope="tickets:read", realm_access={"roles": ["agent"]})
    token = sign(expected, KEYS[algorithm].private_pem, KEYS[algorithm].kid, algorithm)
    assert verified(token, KEYS[algorithm]) == expected


class Later:
    """A time relative to when the test runs (parameters are built at collection, maybe minutes earlier)."""

    def __init__(self, seconds: int, *, as_text: bool = False) -> None:
        self.seconds = seconds
        self.as_text = as_text

    def value(self) -> int | str:
        moment = int(time.time()) + self.seconds
        return str(moment) if self.as_text else moment


@pytest.mark.parametrize(
    ("changes", "accepted"),
    [
        pytest.param({"aud": [AUDIENCE, "other"]}, True, id="audience-in-a-list"),
        pytest.param({"exp": Later(-LEEWAY + 5)}, True, id="expired-within-leeway"),
        pytest.param({"nbf": Later(LEEWAY - 5)}, True, id="nbf-within-leeway"),
        pytest.param({"iat": Later(LEEWAY - 5)}, True, id="iat-within-leeway"),
        pytest.param({"iat": None}, True, id="iat-optional"),
        pytest.param({"exp": Later(-LEEWAY - 60)}, False, id="expired-beyond-leeway"),
        pytest.param({"nbf": Later(LEEWAY + 60)}, False, id="nbf-in-future"),
        pytest.param({"iat": Later(LEEWAY + 60)}, False, id="iat-in-future"),
        pytest.param({"iat": "yesterday"}, False, id="iat-not-a-number"),
        pytest.param({"aud": "other-api"}, False, id="wrong-audience"),
        pytest.param({"aud": ["other-api"]}, False, id="wrong-audience-list"),
        pytest.param({"iss": "https://evil.test/realms/main"}, False, id="wrong-issuer"),
        pytest.param({"exp": None}, False, id="exp-missing"),
        pytest.param({"exp": str(Later(+(600)))}, False, id="exp-as-text"),
        pytest.param({"sub": None}, False, id="sub-missing"),
        pytest.param({"sub": 42}, False, id="sub-not-text"),
        pytest.param({"sub": ""}, False, id="sub-empty"),
        pytest.param({"sub": "s" * 255}, True, id="sub-of-255-characters"),
        pytest.param({"sub": "s" * 256}, False, id="sub-over-255-characters"),
        pytest.param({"sub": "user\n1"}, False, id="sub-with-a-control-character"),
        pytest.param({"sub": "user-\ud800"}, False, id="sub-with-a-lone-surrogate"),
        pytest.param({"sub": "usér-1"}, True, id="sub-non-ascii-printable"),
        pytest.param({"aud": None}, False, id="aud-missing"),
        pytest.param({"iss": None}, False, id="iss-missing"),
    ],
)
@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_verify_checks_the_registered_claims(algorithm: str, changes: dict[str, Any], accepted: bool) -> None:
    changes = {name: value.value() if isinstance(value, Later) else value for name, value in changes.items()}
    token = token_for(KEYS[algorithm], **changes)
    if accepted:
        assert verified(token, KEYS[algorithm])["sub"] == changes.get("sub", "user-1")
    else:
        with pytest.raises(TokenRejected):
            verified(token, KEYS[algorithm])


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        pytest.param({"aud": "other-api"}, "JWTClaimsError: Invalid audience", id="audience"),
        pytest.param({"iss": "https://evil.test"}, "JWTClaimsError: Invalid issuer", id="issuer"),
        pytest.param({"exp": 1_000_000}, "ExpiredSignatureError: Signature has expired.", id="expired"),
        pytest.param(
            {"nbf": int(time.time()) + 3600}, "JWTClaimsError: The token is not yet valid (nbf)", id="not-yet-valid"
        ),
        pytest.param({"iat": int(time.time()) + 3600}, "iat is in the future", id="issued-in-future"),
        # python-jose accepts a numeric string as exp; the service insists on a JSON number. (A day ahead: the value
        # is computed when the tests are collected, and a loaded machine reaches this test many minutes later.)
        pytest.param({"exp": str(int(time.time()) + 86_400)}, "exp is not a number", id="exp-numeric-text"),
        pytest.param(
            {"exp": "2099-01-01"}, "JWTClaimsError: Expiration Time claim (exp) must be an integer.", id="exp-date-text"
        ),
        pytest.param({"exp": None}, 'JWTError: missing required key "exp" among claims', id="no-exp"),
        pytest.param({"sub": None}, 'JWTError: missing required key "sub" among claims', id="no-sub"),
        pytest.param({"aud": None}, 'JWTError: missing required key "aud" among claims', id="no-aud"),
        pytest.param({"sub": "s" * 256}, "sub must be 1 to 255 printable characters", id="long-sub"),
    ],
)
def test_verify_says_why_for_the_log(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(TokenRejected) as caught:
        verified(token_for(RSA, **changes), RSA)
    assert str(caught.value) == reason


def test_verify_refuses_a_token_of_another_algorithm_for_the_key() -> None:
    # An ES256 token presented against the realm's RSA key, and the other way round: refused before any crypto.
    assert rejection(lambda: verified(token_for(EC), RSA, "ES256")) == f"algorithm ES256 does not match key {RSA.kid}"
    assert rejection(lambda: verified(token_for(RSA), EC, "RS256")) == f"algorithm RS256 does not match key {EC.kid}"


def test_verify_refuses_an_algorithm_other_than_the_key_declares() -> None:
    assert rejection(lambda: verified(token_for(RSA), RSA, "RS384")) == f"algorithm RS384 does not match key {RSA.kid}"


def test_verify_refuses_a_disallowed_algorithm_even_if_asked() -> None:
    assert (
        rejection(lambda: verified(hs256_with_public_key(claims(), RSA), RSA, "HS256"))
        == f"algorithm HS256 does not match key {RSA.kid}"
    )


def test_verify_refuses_the_header_algorithm_differing_from_the_selected_one() -> None:
    # The caller passes the algorithm it selected; a token whose header says otherwise is not accepted.
    key = public_key_from_jwk({k: v for k, v in RSA.jwk.items() if k != "alg"})
    token = pyjwt_sign(claims(), RSA, algorithm="RS384")
    assert (
        rejection(lambda: verify(token, key, "RS256", issuer=ISSUER, audience=AUDIENCE, leeway_seconds=LEEWAY))
        == "JWTError: The specified alg value is not allowed"
    )


def test_verify_refuses_an_ec_key_of_another_curve() -> None:
    key = public_key_from_jwk(p384_jwk())
    assert key.curve == "P-384"
    assert (
        rejection(lambda: verify(token_for(EC), key, "ES256", issuer=ISSUER, audience=AUDIENCE, leeway_seconds=LEEWAY))
        == "algorithm ES256 does not match key p384"
    )


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_verify_refuses_a_tampered_payload(algorithm: str) -> None:
    token = tamper(token_for(KEYS[algorithm]), sub="admin")
    assert rejection(lambda: verified(token, KEYS[algorithm])) == "JWTError: Signature verification failed."


@pytest.mark.parametrize(("algorithm", "other"), [("RS256", OTHER_RSA), ("ES256", OTHER_EC)])
def test_verify_refuses_a_signature_by_another_key(algorithm: str, other: SigningKey) -> None:
    # Signed by another key that claims the realm key's kid.
    token = pyjwt_sign(claims(), other, kid=KEYS[algorithm].kid)
    assert rejection(lambda: verified(token, KEYS[algorithm])) == "JWTError: Signature verification failed."


def test_verify_refuses_a_swapped_signature() -> None:
    header, payload, _ = token_for(RSA).split(".")
    other_signature = token_for(RSA, sub="other").split(".")[2]
    assert (
        rejection(lambda: verified(f"{header}.{payload}.{other_signature}", RSA))
        == "JWTError: Signature verification failed."
    )


def test_sign_refuses_a_disallowed_algorithm() -> None:
    assert rejection(lambda: sign(claims(), "secret", "k", "HS256"), ValueError) == "algorithm HS256 not allowed"


# --- cross-check with PyJWT ------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_tokens_signed_by_pyjwt_verify_with_ours(algorithm: str) -> None:
    key = KEYS[algorithm]
    expected = claims(scope="tickets:read")
    token = pyjwt.encode(expected, key.private_pem, algorithm=algorithm, headers={"kid": key.kid})
    assert inspect(token) == UnverifiedToken(algorithm=algorithm, kid=key.kid, issuer=ISSUER)
    assert verified(token, key) == expected


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_tokens_signed_by_ours_verify_with_pyjwt(algorithm: str) -> None:
    key = KEYS[algorithm]
    expected = claims(scope="tickets:read")
    token = sign(expected, key.private_pem, key.kid, algorithm)
    assert pyjwt.get_unverified_header(token)["kid"] == key.kid
    assert pyjwt.get_unverified_header(token)["alg"] == algorithm
    decoded = pyjwt.decode(token, pyjwt.PyJWK(key.jwk).key, algorithms=[algorithm], audience=AUDIENCE, issuer=ISSUER)
    assert decoded == expected


@pytest.mark.parametrize(("algorithm", "other"), [("RS256", OTHER_RSA), ("ES256", OTHER_EC)])
def test_both_libraries_refuse_a_signature_by_another_key(algorithm: str, other: SigningKey) -> None:
    by_pyjwt = pyjwt.encode(claims(), other.private_pem, algorithm=algorithm, headers={"kid": KEYS[algorithm].kid})
    with pytest.raises(TokenRejected):
        verified(by_pyjwt, KEYS[algorithm])
    by_us = sign(claims(), other.private_pem, KEYS[algorithm].kid, algorithm)
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(
            by_us, pyjwt.PyJWK(KEYS[algorithm].jwk).key, algorithms=[algorithm], audience=AUDIENCE, issuer=ISSUER
        )


def test_pyjwt_expired_token_is_refused_by_both() -> None:
    expired = claims(exp=int(time.time()) - 3600)
    token = pyjwt.encode(expired, RSA.private_pem, algorithm="RS256", headers={"kid": RSA.kid})
    assert rejection(lambda: verified(token, RSA)) == "ExpiredSignatureError: Signature has expired."
    with pytest.raises(pyjwt.ExpiredSignatureError):
        pyjwt.decode(token, pyjwt.PyJWK(RSA.jwk).key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)


# --- keys ------------------------------------------------------------------------------------------------------


def test_public_key_from_rsa_jwk() -> None:
    key = public_key_from_jwk(RSA.jwk)
    assert isinstance(key, VerificationKey)
    assert (key.kid, key.key_type, key.algorithm, key.curve) == (RSA.kid, "RSA", "RS256", None)


def test_public_key_from_ec_jwk() -> None:
    key = public_key_from_jwk(EC.jwk)
    assert (key.kid, key.key_type, key.algorithm, key.curve) == (EC.kid, "EC", "ES256", "P-256")


def without(jwk: dict[str, Any], *members: str) -> dict[str, Any]:
    return {name: value for name, value in jwk.items() if name not in members}


@pytest.mark.parametrize(
    ("jwk", "accepts"),
    [
        pytest.param(RSA.jwk, {"RS256"}, id="rsa-with-alg"),
        pytest.param(without(RSA.jwk, "alg"), {"RS256", "RS384", "RS512"}, id="rsa-without-alg"),
        pytest.param(EC.jwk, {"ES256"}, id="ec-with-alg"),
        pytest.param(without(EC.jwk, "alg"), {"ES256"}, id="ec-p256-without-alg"),
        pytest.param(p384_jwk(), {"ES384"}, id="ec-p384-without-alg"),
        pytest.param(without(RSA.jwk, "use"), {"RS256"}, id="use-defaults-to-sig"),
    ],
)
def test_which_algorithms_a_key_accepts(jwk: dict[str, Any], accepts: set[str]) -> None:
    key = public_key_from_jwk(jwk)
    candidates = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "HS256", "PS256", "none"]
    assert {algorithm for algorithm in candidates if key.accepts(algorithm)} == accepts


@pytest.mark.parametrize(
    ("jwk", "problem"),
    [
        pytest.param(
            {**RSA.jwk, "d": "AQAB"}, "contains private key material; publish only public keys", id="rsa-private-d"
        ),
        pytest.param(
            {**RSA.jwk, "p": "AQAB", "q": "AQAB"},
            "contains private key material; publish only public keys",
            id="rsa-primes",
        ),
        pytest.param(
            {**EC.jwk, "d": "AQAB"}, "contains private key material; publish only public keys", id="ec-private-d"
        ),
        pytest.param(
            {"kty": "oct", "k": "c2VjcmV0", "kid": "s"},
            "contains private key material; publish only public keys",
            id="symmetric-secret",
        ),
        pytest.param(without(RSA.jwk, "kid"), "has no kid", id="no-kid"),
        pytest.param({**RSA.jwk, "kid": ""}, "has no kid", id="empty-kid"),
        pytest.param({**RSA.jwk, "kid": 5}, "has no kid", id="kid-not-text"),
        pytest.param({"kty": "oct", "kid": "s"}, "kty 'oct' is not RSA or EC", id="kty-oct"),
        pytest.param({**RSA.jwk, "kty": "OKP"}, "kty 'OKP' is not RSA or EC", id="kty-okp"),
        pytest.param(without(RSA.jwk, "kty"), "kty None is not RSA or EC", id="no-kty"),
        pytest.param({**RSA.jwk, "use": "enc"}, "is not a signature key (use != sig)", id="use-enc"),
        pytest.param({**RSA.jwk, "alg": "HS256"}, "alg 'HS256' is not an allowed asymmetric algorithm", id="alg-hs"),
        pytest.param({**RSA.jwk, "alg": "none"}, "alg 'none' is not an allowed asymmetric algorithm", id="alg-none"),
        pytest.param(
            {**RSA.jwk, "alg": "RSA-OAEP"}, "alg 'RSA-OAEP' is not an allowed asymmetric algorithm", id="alg-enc"
        ),
        pytest.param(
            {**without(EC.jwk, "alg"), "crv": "P-192"}, "EC curve 'P-192' is not supported", id="unsupported-curve"
        ),
        pytest.param(without(EC.jwk, "alg", "crv"), "EC curve None is not supported", id="no-curve"),
    ],
)
def test_refused_jwks(jwk: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidKey) as caught:
        public_key_from_jwk(jwk)
    assert str(caught.value) == problem
    assert signing_key_problem(jwk, ("RS256", "ES256")) == problem


@pytest.mark.parametrize(
    ("jwk", "key_type"),
    [
        pytest.param({**RSA.jwk, "e": "AA"}, "RSA", id="zero-e"),
        pytest.param({**EC.jwk, "x": base64.urlsafe_b64encode(b"\x00" * 32).decode()}, "EC", id="point-not-on-curve"),
    ],
)
def test_malformed_key_material_is_refused(jwk: dict[str, Any], key_type: str) -> None:
    with pytest.raises(InvalidKey, match=f"^is not a valid {key_type} key: "):
        public_key_from_jwk(jwk)
    problem = signing_key_problem(jwk, ("RS256", "ES256"))
    assert problem is not None
    assert problem.startswith(f"is not a valid {key_type} key: ")


@pytest.mark.parametrize(
    ("jwk", "algorithms", "problem"),
    [
        pytest.param(RSA.jwk, ("RS256",), None, id="rsa-for-rs256"),
        pytest.param(EC.jwk, ("RS256", "ES256"), None, id="ec-among-others"),
        pytest.param(
            RSA.jwk, ("ES256",), "key cannot verify any of the realm's algorithms ['ES256']", id="rsa-for-es256"
        ),
        pytest.param(
            EC.jwk,
            ("RS256", "RS512"),
            "key cannot verify any of the realm's algorithms ['RS256', 'RS512']",
            id="ec-for-rs",
        ),
        pytest.param(
            RSA.jwk, ("RS384",), "key cannot verify any of the realm's algorithms ['RS384']", id="rsa-alg-differs"
        ),
        pytest.param(
            p384_jwk(), ("ES256",), "key cannot verify any of the realm's algorithms ['ES256']", id="curve-differs"
        ),
        pytest.param(RSA.jwk, (), "key cannot verify any of the realm's algorithms []", id="no-algorithms"),
    ],
)
def test_signing_key_problem(jwk: dict[str, Any], algorithms: tuple[str, ...], problem: str | None) -> None:
    assert signing_key_problem(jwk, algorithms) == problem


@pytest.mark.parametrize(
    ("jwk", "problem"),
    [
        pytest.param({**RSA.jwk, "n": "a"}, "RSA modulus n is not base64url", id="malformed-n"),
        # A lenient decoder would skip the invalid characters and build a tiny key anyone can factor.
        pytest.param({**RSA.jwk, "n": "!!!not-base64!!!"}, "RSA modulus n is not base64url", id="garbage-n"),
        pytest.param({**RSA.jwk, "n": ""}, "RSA modulus of 0 bits is too short: at least 2048 bits", id="empty-n"),
        pytest.param({**RSA.jwk, "n": "AA"}, "RSA modulus of 0 bits is too short: at least 2048 bits", id="zero-n"),
        pytest.param(
            {**RSA.jwk, "n": b64url(b"\xff" * 128)},
            "RSA modulus of 1024 bits is too short: at least 2048 bits",
            id="1024",
        ),
        pytest.param(without(RSA.jwk, "n"), "RSA key has no modulus n", id="missing-n"),
    ],
)
def test_rsa_moduli_that_are_missing_malformed_or_short_are_refused(jwk: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidKey) as caught:
        public_key_from_jwk(jwk)
    assert str(caught.value) == problem
    assert signing_key_problem(jwk, ("RS256",)) == problem
