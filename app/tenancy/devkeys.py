"""Key pairs for development realms, generated on first use into the git-ignored data folder.

Private keys never leave `<data_dir>/keys/`; tenant files and the database only ever see the public JWK.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
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
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = generate_private_pem(algorithm)
    # Write aside, then link into place: two processes starting at once agree on one key, and a reader never
    # sees a half-written file.
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
