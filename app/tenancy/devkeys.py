"""Key pairs for development realms and built-in realms, generated on first use into the git-ignored data folder.

Private keys never leave `<data_dir>/keys/`; tenant files and the database only ever see the public JWK. A built-in
realm keeps its keys in a folder of their own, one file per key named by its creation time: the newest signs, and
the one before it stays published after a rotation, so tokens it signed keep verifying until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def _b64url_uint(value: int, length: int | None = None) -> str:
    raw = value.to_bytes(length or (value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(private_pem: str) -> dict[str, Any]:
    """The public JWK for a PEM private key, with an RFC 7638 thumbprint as its kid."""
    private = serialization.load_pem_private_key(private_pem.encode(), password=None)
    if isinstance(private, rsa.RSAPrivateKey):
        numbers = private.public_key().public_numbers()
        members = {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}
        algorithm = "RS256"
    elif isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp256r1":
        point = private.public_key().public_numbers()
        members = {
            "crv": "P-256",
            "kty": "EC",
            "x": _b64url_uint(point.x, 32),
            "y": _b64url_uint(point.y, 32),
        }
        algorithm = "ES256"
    else:
        raise ValueError("development keys are RSA or P-256 EC")
    thumbprint = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    kid = base64.urlsafe_b64encode(thumbprint).rstrip(b"=").decode()
    return {**members, "kid": kid, "use": "sig", "alg": algorithm}


def generate_private_pem(algorithm: str) -> str:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if algorithm == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif algorithm == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"cannot generate a development key for {algorithm}")
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def dev_key_path(data_dir: Path, tenant_slug: str, realm_name: str) -> Path:
    return data_dir / "keys" / tenant_slug / f"{realm_name}.pem"


def ensure_dev_key(data_dir: Path, tenant_slug: str, realm_name: str, algorithm: str) -> str:
    """Return the realm's private PEM, generating it (readable by the owner only) if it does not exist yet."""
    path = dev_key_path(data_dir, tenant_slug, realm_name)
    if path.exists():
        return path.read_text()
    return _write_once(path, generate_private_pem(algorithm))


def builtin_key_dir(data_dir: Path, tenant_slug: str, realm_name: str) -> Path:
    return data_dir / "keys" / tenant_slug / realm_name


# The first key's file name: fixed, so that two processes starting at once agree on one key (see _write_once).
_FIRST_KEY = f"{0:020d}.pem"


def builtin_keys(data_dir: Path, tenant_slug: str, realm_name: str, algorithm: str) -> list[str]:
    """The realm's private PEMs, newest (the signing key) first, at most two; the first is generated if none exists."""
    folder = builtin_key_dir(data_dir, tenant_slug, realm_name)
    files = sorted(folder.glob("*.pem"), reverse=True) if folder.is_dir() else []
    if not files:
        return [_write_once(folder / _FIRST_KEY, generate_private_pem(algorithm))]
    return [path.read_text() for path in files[:2]]


def rotate_builtin_key(data_dir: Path, tenant_slug: str, realm_name: str, algorithm: str) -> str:
    """Generate the realm's next signing key and forget every key older than the one it replaces; the new kid."""
    folder = builtin_key_dir(data_dir, tenant_slug, realm_name)
    builtin_keys(data_dir, tenant_slug, realm_name, algorithm)
    pem = _write_once(folder / f"{time.time_ns():020d}.pem", generate_private_pem(algorithm))
    for retired in sorted(folder.glob("*.pem"), reverse=True)[2:]:
        retired.unlink()
    return str(public_jwk(pem)["kid"])


def _write_once(path: Path, pem: str) -> str:
    """Write the key aside, then link it into place: a reader never sees a half-written file, and of two writers
    the first wins (the second gets the first one's key)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(pem)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pem = path.read_text()
    finally:
        temporary.unlink()
    return pem


def builtin_signing_pem(data_dir: Path, tenant_slug: str, realm_name: str, kid: str) -> str | None:
    """The private PEM of the built-in realm's generated key with this kid, if this host's data folder has it."""
    folder = builtin_key_dir(data_dir, tenant_slug, realm_name)
    for path in sorted(folder.glob("*.pem"), reverse=True) if folder.is_dir() else []:
        pem = path.read_text()
        if public_jwk(pem)["kid"] == kid:
            return pem
    return None
