"""JWT verification and (development) signing. The ONLY module that imports python-jose.

python-jose verifies whatever it is told to: it accepts HMAC with a public key as the secret, skips audience checks
when no audience is passed, and trusts header fields. So every decision is made here, explicitly:
- only asymmetric algorithms from ALLOWED_ALGORITHMS, and only the one that matches the selected key's type;
- the key is chosen by `kid` from the realm's keys, never from the token (`jwk`, `jku`, `x5u` are ignored);
- `iss`, `aud` and `exp` are required and checked; `nbf` and `iat` are honoured with a small leeway;
- JWE (five segments), oversized and malformed tokens are refused before any parsing library sees them.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from typing import Any

import msgspec
from jose import jwk, jwt
from jose.backends.base import Key

ALLOWED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"})
_KEY_TYPE_FOR_ALGORITHM = {"RS": "RSA", "ES": "EC"}
_EC_CURVE_FOR_ALGORITHM = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# NIST SP 800-131A: RSA keys shorter than this are not acceptable for signatures.
MIN_RSA_BITS = 2048
# Keycloak access tokens are 1-3 KiB; anything past this is not a token we issued and could be a parsing attack.
MAX_TOKEN_LENGTH = 8192
_COMPACT_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


# The longest subject accepted (OpenID Connect Core 1.0, section 2).
MAX_SUBJECT_LENGTH = 255


class TokenRejected(Exception):
    """A token failed verification. The reason is for the log, never for the client."""


class VerificationKey(msgspec.Struct, frozen=True):
    kid: str
    key_type: str
    algorithm: str | None
    curve: str | None
    key: Any  # jose Key, constructed once so verification does not re-parse the JWK

    def accepts(self, algorithm: str) -> bool:
        if _KEY_TYPE_FOR_ALGORITHM.get(algorithm[:2]) != self.key_type:
            return False
        if self.algorithm is not None and self.algorithm != algorithm:
            return False
        return self.key_type != "EC" or self.curve == _EC_CURVE_FOR_ALGORITHM[algorithm]


class InvalidKey(ValueError):
    """A JWK that must not be used for verification; the message says why."""


def public_key_from_jwk(data: dict[str, Any]) -> VerificationKey:
    """Build a verification key from one public JWK, refusing private material and non-signature keys."""
    if _PRIVATE_JWK_MEMBERS & data.keys():
        raise InvalidKey("contains private key material; publish only public keys")
    kid = data.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidKey("has no kid")
    key_type = data.get("kty")
    if key_type not in ("RSA", "EC"):
        raise InvalidKey(f"kty {key_type!r} is not RSA or EC")
    if data.get("use", "sig") != "sig":
        raise InvalidKey("is not a signature key (use != sig)")
    algorithm = data.get("alg")
    if algorithm is not None and algorithm not in ALLOWED_ALGORITHMS:
        raise InvalidKey(f"alg {algorithm!r} is not an allowed asymmetric algorithm")
    if key_type == "RSA" and (bits := _modulus_bits(data.get("n"))) < MIN_RSA_BITS:
        raise InvalidKey(f"RSA modulus of {bits} bits is too short: at least {MIN_RSA_BITS} bits")
    construct_alg = algorithm or ("RS256" if key_type == "RSA" else _ec_alg_for_curve(data.get("crv")))
    try:
        key: Key = jwk.construct(data, construct_alg)
    except Exception as exc:  # jose raises a variety of errors for malformed key material
        raise InvalidKey(f"is not a valid {key_type} key: {exc}") from None
    return VerificationKey(kid=kid, key_type=key_type, algorithm=algorithm, curve=data.get("crv"), key=key)


def _modulus_bits(modulus: object) -> int:
    if not isinstance(modulus, str):
        raise InvalidKey("RSA key has no modulus n")
    try:
        # Strict base64url: a lenient decoder skips invalid characters and turns garbage into a tiny modulus.
        raw = base64.b64decode(modulus.replace("-", "+").replace("_", "/") + "=" * (-len(modulus) % 4), validate=True)
    except binascii.Error:
        raise InvalidKey("RSA modulus n is not base64url") from None
    return int.from_bytes(raw, "big").bit_length()


def signing_key_problem(data: dict[str, Any], algorithms: tuple[str, ...]) -> str | None:
    """Why a realm's public JWK cannot be used to verify tokens of any of the realm's algorithms, or None."""
    try:
        key = public_key_from_jwk(data)
    except InvalidKey as exc:
        return str(exc)
    if not any(key.accepts(algorithm) for algorithm in algorithms):
        return f"key cannot verify any of the realm's algorithms {list(algorithms)}"
    return None


def _ec_alg_for_curve(curve: object) -> str:
    for algorithm, name in _EC_CURVE_FOR_ALGORITHM.items():
        if name == curve:
            return algorithm
    raise InvalidKey(f"EC curve {curve!r} is not supported")


class UnverifiedToken(msgspec.Struct, frozen=True):
    """What may be read from a token before its signature is checked: only enough to pick realm and key."""

    algorithm: str
    kid: str
    issuer: str


def _b64json(segment: str) -> Any:
    try:
        return msgspec.json.decode(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, msgspec.DecodeError, ValueError):
        raise TokenRejected("segment is not base64url JSON") from None


def inspect(token: str) -> UnverifiedToken:
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenRejected("token too long")
    if not _COMPACT_JWS.match(token):
        # Also refuses JWE (five segments) and unsecured tokens with an empty signature.
        raise TokenRejected("not a compact JWS")
    header_segment, payload_segment, _ = token.split(".")
    header = _b64json(header_segment)
    payload = _b64json(payload_segment)
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise TokenRejected("header or payload is not a JSON object")
    algorithm = header.get("alg")
    if algorithm not in ALLOWED_ALGORITHMS:
        raise TokenRejected(f"algorithm {algorithm!r} not allowed")
    if "crit" in header:
        raise TokenRejected("critical header extensions are not supported")
    kid = header.get("kid")
    issuer = payload.get("iss")
    if not isinstance(kid, str) or not kid:
        raise TokenRejected("no kid")
    if not isinstance(issuer, str) or not issuer:
        raise TokenRejected("no issuer")
    return UnverifiedToken(algorithm=algorithm, kid=kid, issuer=issuer)


def verify(
    token: str,
    key: VerificationKey,
    algorithm: str,
    *,
    issuer: str,
    audience: str,
    leeway_seconds: int,
) -> dict[str, Any]:
    """Verify signature and registered claims; return the claims. Raises TokenRejected."""
    if algorithm not in ALLOWED_ALGORITHMS or not key.accepts(algorithm):
        raise TokenRejected(f"algorithm {algorithm} does not match key {key.kid}")
    options = {
        "verify_signature": True,
        "verify_aud": True,
        "verify_iss": True,
        "verify_exp": True,
        "verify_nbf": True,
        "verify_iat": True,
        "verify_sub": True,
        "verify_jti": True,
        "verify_at_hash": False,  # only meaningful for OIDC ID tokens with an access_token alongside
        "require_aud": True,
        "require_iss": True,
        "require_exp": True,
        "require_sub": True,
        "require_iat": False,
        "require_nbf": False,
        "require_jti": False,
        "require_at_hash": False,
        "leeway": leeway_seconds,
    }
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key.key, algorithms=[algorithm], audience=audience, issuer=issuer, options=options
        )
    except Exception as exc:  # hostile input: every failure mode of the library is a rejection
        raise TokenRejected(f"{exc.__class__.__name__}: {exc}") from None
    issued_at = claims.get("iat")
    if issued_at is not None and (not isinstance(issued_at, int | float) or issued_at > time.time() + leeway_seconds):
        raise TokenRejected("iat is in the future")
    if not isinstance(claims.get("exp"), int | float):
        raise TokenRejected("exp is not a number")
    subject = claims["sub"]  # python-jose has checked that it is text
    # OpenID Connect Core 1.0, section 2: sub "MUST NOT exceed 255 ASCII characters". The subject is stored and
    # indexed (created_by, assignee, idempotency scope): a longer one, or one with control characters or lone
    # surrogates (which the database cannot store), is refused here rather than failing a write later.
    if not 0 < len(subject) <= MAX_SUBJECT_LENGTH or not subject.isprintable():
        raise TokenRejected(f"sub must be 1 to {MAX_SUBJECT_LENGTH} printable characters")
    return claims


def sign(claims: dict[str, Any], private_key: str | SigningKey, kid: str, algorithm: str) -> str:
    """Sign a token with a realm's private key: a PEM (a development realm's, for `python -m app token` and tests),
    or a key parsed once by `signing_key` (a builtin realm's, for every token it issues)."""
    if algorithm not in ALLOWED_ALGORITHMS:
        raise ValueError(f"algorithm {algorithm} not allowed")
    key = private_key.key if isinstance(private_key, SigningKey) else private_key
    token: str = jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})
    return token


class SigningKey(msgspec.Struct, frozen=True):
    """A private key parsed once: python-jose would parse and check a PEM again for every token."""

    key: Any  # jose Key


def signing_key(private_key_pem: str, algorithm: str) -> SigningKey:
    if algorithm not in ALLOWED_ALGORITHMS:
        raise ValueError(f"algorithm {algorithm} not allowed")
    return SigningKey(jwk.construct(private_key_pem, algorithm))
