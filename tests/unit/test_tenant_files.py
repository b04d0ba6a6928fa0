"""The tenant-file loader: the shipped examples load, good files resolve to exact configs, and every bad file is
refused with a message that starts with the file name and names the field."""

from __future__ import annotations

import json
import re
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest

from app.config import PROJECT_ROOT
from app.tenancy.devkeys import dev_key_path, public_jwk
from app.tenancy.files import TenantFileError
from app.tenancy.model import (
    V1_TICKET_FIELDS,
    AttachmentLimits,
    RateLimits,
    RealmConfig,
    RoleMapping,
    TenantConfig,
    V1Config,
    V1PlatformMapping,
    V1TicketMapping,
    seed_status,
)
from tests.support import (
    GOOD_TENANT_FILE,
    GOOD_TENANT_ID,
    GOOD_TENANT_ISSUER,
    GOOD_TENANT_URL_KEYS,
    SigningKey,
    load_tenant_file,
    load_tenant_files,
    write_files,
)

SHIPPED_TENANTS = PROJECT_ROOT / "tenants"
ACME_ID = uuid.UUID("6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
GLOBEX_ID = uuid.UUID("0a9b8c7d-6e5f-4d3c-9b2a-1f0e9d8c7b6a")

# Generated once per module: RSA key generation is slow enough to matter when repeated per case.
RSA_KEY = SigningKey("RS256")
OTHER_RSA_KEY = SigningKey("RS256")
EC_KEY = SigningKey("ES256")

# The loader's reference file (tests/support.py); each bad case below changes exactly one thing in it.
GOOD = GOOD_TENANT_FILE
ALPHA_ID = GOOD_TENANT_ID
ALPHA_ISSUER = GOOD_TENANT_ISSUER
URL_KEYS = GOOD_TENANT_URL_KEYS
GOOD_REALM = GOOD[GOOD.index("[[realms]]") :]


def edit(document: str, old: str, new: str) -> str:
    """Replace one exact snippet; refuse to silently do nothing when the snippet is not there."""
    assert document.count(old) == 1, f"{old!r} must occur exactly once"
    return document.replace(old, new)


def toml_table(data: dict[str, Any]) -> str:
    return "{ " + ", ".join(f"{key} = {json.dumps(value)}" for key, value in data.items()) + " }"


def inline_jwks(*keys: dict[str, Any]) -> str:
    return "keys = { jwks = { keys = [ " + ", ".join(toml_table(key) for key in keys) + " ] } }"


write = write_files


# --- 1. The shipped example tenants ---------------------------------------------------------------------------


def test_shipped_example_tenants_load_with_generated_dev_keys(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    tenants = load_tenant_files(SHIPPED_TENANTS, data_dir)

    assert [(t.slug, t.id) for t in tenants] == [("acme", ACME_ID), ("globex", GLOBEX_ID)]
    assert tenants[0].roles == RoleMapping(
        read=("ticket-admin", "ticket-agent", "ticket-viewer"),
        write=("ticket-admin", "ticket-agent"),
        admin=("ticket-admin",),
        support="ticket-support",
        customer=("ticket-customer",),
    )
    expected = {"acme": ("acme-dev", "RS256", "RSA"), "globex": ("globex-dev", "ES256", "EC")}
    for tenant in tenants:
        realm_name, algorithm, key_type = expected[tenant.slug]
        assert tenant.tenant_claim == "tenant_id"
        # Globex has a builtin realm too (below).
        assert len(tenant.realms) == (2 if tenant.slug == "globex" else 1)
        realm = tenant.realms[0]
        assert (realm.name, realm.issuer, realm.audience) == (
            realm_name,
            f"http://localhost:8080/realms/{realm_name}",
            "ticketing-api",
        )
        assert (realm.algorithms, realm.dev_key_algorithm, realm.jwks_url) == ((algorithm,), algorithm, None)
        assert realm.jwks is not None
        [key] = realm.jwks["keys"]
        assert (key["kty"], key["alg"], key["use"]) == (key_type, algorithm, "sig")
        assert "d" not in key

        pem_path = data_dir / "keys" / tenant.slug / f"{realm_name}.pem"
        assert pem_path == dev_key_path(data_dir, tenant.slug, realm_name)
        assert stat.S_IMODE(pem_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(pem_path.parent.stat().st_mode) == 0o700
        # The published key is the public half of the private key on disk.
        assert public_jwk(pem_path.read_text()) == key

    builtin = tenants[1].realms[1]
    assert (builtin.name, builtin.kind, builtin.issuer, builtin.dev_key_algorithm) == (
        "globex",
        "builtin",
        "http://localhost:8000/realms/globex",
        None,
    )
    [signing] = builtin.jwks["keys"]  # type: ignore[index]
    assert builtin.signing_kid == signing["kid"]
    [pem_path] = (data_dir / "keys" / "globex" / "globex").glob("*.pem")
    assert stat.S_IMODE(pem_path.stat().st_mode) == 0o600
    assert public_jwk(pem_path.read_text()) == signing


def test_shipped_example_tenants_reuse_their_dev_keys(tmp_path: Path) -> None:
    def kids(data_dir: Path) -> list[str]:
        tenants = load_tenant_files(SHIPPED_TENANTS, data_dir)
        return [tenant.realms[0].jwks["keys"][0]["kid"] for tenant in tenants]  # type: ignore[index]

    first = kids(tmp_path / "data")
    pems = {path: path.read_bytes() for path in (tmp_path / "data").rglob("*.pem")}
    assert len(pems) == 3  # acme-dev's, globex-dev's and the builtin globex realm's
    assert kids(tmp_path / "data") == first
    assert {path: path.read_bytes() for path in (tmp_path / "data").rglob("*.pem")} == pems
    # A different data folder gets its own keys, so "same kid" above means reused, not deterministic.
    other = kids(tmp_path / "other-data")
    assert other[0] != first[0]
    assert other[1] != first[1]


# --- 2. Good tenant files ------------------------------------------------------------------------------------


def test_tenant_with_inline_jwks(tmp_path: Path) -> None:
    document = edit(GOOD, URL_KEYS, 'algorithms = ["RS256", "ES256"]\n' + inline_jwks(RSA_KEY.jwk, EC_KEY.jwk))
    path = write(tmp_path / "tenants", {"alpha.toml": document}) / "alpha.toml"

    assert load_tenant_file(path, tmp_path / "data") == TenantConfig(
        id=uuid.UUID(ALPHA_ID),
        slug="alpha",
        name="Alpha Ltd",
        tenant_claim="tenant_id",
        roles=RoleMapping(
            read=("admin", "agent", "viewer"), write=("admin", "agent"), admin=("admin",), support="support"
        ),
        realms=(
            RealmConfig(
                name="alpha-main",
                issuer=ALPHA_ISSUER,
                audience="ticketing-api",
                algorithms=("RS256", "ES256"),
                jwks={"keys": [RSA_KEY.jwk, EC_KEY.jwk]},
                jwks_url=None,
                dev_key_algorithm=None,
            ),
        ),
    )
    assert not (tmp_path / "data").exists()  # no dev key is generated for a realm with its own keys


def test_tenant_with_jwks_url_gets_default_claim_and_algorithms(tmp_path: Path) -> None:
    path = write(tmp_path / "tenants", {"alpha.toml": GOOD}) / "alpha.toml"

    tenant = load_tenant_file(path, tmp_path / "data")

    assert tenant.tenant_claim == "tenant_id"
    assert tenant.roles.read == ("admin", "agent", "viewer")
    assert tenant.realms == (
        RealmConfig(
            name="alpha-main",
            issuer=ALPHA_ISSUER,
            audience="ticketing-api",
            algorithms=("RS256",),
            jwks=None,
            jwks_url="https://idp.alpha.test/jwks/alpha-main",
            dev_key_algorithm=None,
        ),
    )


def test_tenant_with_jwks_file_relative_to_tenants_folder(tmp_path: Path) -> None:
    jwks = {"keys": [EC_KEY.jwk]}
    document = edit(GOOD, URL_KEYS, 'algorithms = ["ES256"]\nkeys = { jwks_file = "keys/alpha.json" }')
    document = edit(document, 'name = "Alpha Ltd"\n', 'name = "Alpha Ltd"\ntenant_claim = "org_id"\n')
    tenants_dir = write(tmp_path / "tenants", {"alpha.toml": document})
    write(tenants_dir / "keys", {"alpha.json": json.dumps(jwks)})

    [tenant] = load_tenant_files(tenants_dir, tmp_path / "data")

    assert tenant.tenant_claim == "org_id"
    assert tenant.realms == (
        RealmConfig(
            name="alpha-main",
            issuer=ALPHA_ISSUER,
            audience="ticketing-api",
            algorithms=("ES256",),
            jwks=jwks,
            jwks_url=None,
            dev_key_algorithm=None,
        ),
    )


@pytest.mark.parametrize(
    "url",
    ["http://localhost:8080/realms/alpha-main/certs", "http://127.0.0.1/certs", "http://[::1]:8443/certs"],
)
def test_plain_http_jwks_url_is_accepted_for_loopback_only(tmp_path: Path, url: str) -> None:
    document = edit(GOOD, URL_KEYS, f'keys = {{ jwks_url = "{url}" }}')
    path = write(tmp_path / "tenants", {"alpha.toml": document}) / "alpha.toml"

    assert load_tenant_file(path, tmp_path / "data").realms[0].jwks_url == url


# --- 3. Bad tenant files, one case per kind -------------------------------------------------------------------

# A key error names the key's place in the file: `realms[0].keys.jwks.keys[0]`.
INLINE_KEY = r"realms\[0\]\.keys\.jwks\.keys"


def bad(case_id: str, document: str, match: str, files: dict[str, str] | None = None) -> Any:
    return pytest.param(document, files or {}, match, id=case_id)


BAD_CASES = [
    bad(
        "invalid-toml-syntax",
        edit(GOOD, 'name = "Alpha Ltd"', 'name = "Alpha Ltd'),
        r"^bad\.toml: not valid TOML: .*\(at line 3, column \d+\)$",
    ),
    bad(
        "missing-id",
        edit(GOOD, f'id = "{ALPHA_ID}"\n', ""),
        r"^bad\.toml: \(top level\): 'id' is a required property$",
    ),
    bad(
        "id-not-a-uuid",
        edit(GOOD, ALPHA_ID, "alpha-tenant"),
        r"^bad\.toml: id: 'alpha-tenant' does not match ",
    ),
    bad(
        "slug-uppercase",
        edit(GOOD, 'slug = "alpha"', 'slug = "Alpha"'),
        r"^bad\.toml: slug: 'Alpha' does not match ",
    ),
    bad(
        "unknown-top-level-key",
        edit(GOOD, 'name = "Alpha Ltd"\n', 'name = "Alpha Ltd"\ncolour = "red"\n'),
        r"^bad\.toml: \(top level\): Additional properties are not allowed \('colour' was unexpected\)$",
    ),
    bad(
        "empty-read-roles",
        edit(GOOD, 'read = ["viewer", "agent", "admin"]', "read = []"),
        r"^bad\.toml: roles\.read: \[\] should be non-empty$",
    ),
    bad(
        "missing-support-role",
        edit(GOOD, 'support = "support"\n', ""),
        r"^bad\.toml: roles: 'support' is a required property$",
    ),
    bad(
        "no-realms",
        edit(GOOD, 'name = "Alpha Ltd"\n', 'name = "Alpha Ltd"\nrealms = []\n').replace(GOOD_REALM, ""),
        r"^bad\.toml: realms: \[\] should be non-empty$",
    ),
    bad(
        "realm-missing-issuer",
        edit(GOOD, f'issuer = "{ALPHA_ISSUER}"\n', ""),
        r"^bad\.toml: realms\[0\]: 'issuer' is a required property$",
    ),
    bad(
        "issuer-not-http",
        edit(GOOD, f'issuer = "{ALPHA_ISSUER}"', 'issuer = "ftp://idp.alpha.test/realms/alpha-main"'),
        r"^bad\.toml: realms\[0\]\.issuer: 'ftp://idp\.alpha\.test/realms/alpha-main' does not match ",
    ),
    bad(
        "jwks-url-plain-http-remote",
        edit(GOOD, URL_KEYS, 'keys = { jwks_url = "http://idp.alpha.test/certs" }'),
        r"^bad\.toml: realms\[0\]\.keys\.jwks_url: 'http://idp\.alpha\.test/certs' does not match ",
    ),
    bad(
        "two-key-sources",
        edit(GOOD, "keys = { jwks_url", 'keys = { generate = "RS256", jwks_url'),
        r"^bad\.toml: realms\[0\]\.keys: \{'generate': 'RS256', 'jwks_url': .*\} has too many properties$",
    ),
    bad(
        "generate-algorithm-not-allowed",
        edit(GOOD, URL_KEYS, 'algorithms = ["RS256"]\nkeys = { generate = "ES256" }'),
        r"^bad\.toml: realms\[0\]\.keys\.generate: ES256 is not in the realm's algorithms$",
    ),
    bad(
        "hs256-algorithm",
        edit(GOOD, URL_KEYS, f'algorithms = ["RS256", "HS256"]\n{URL_KEYS}'),
        r"^bad\.toml: realms\[0\]\.algorithms\[1\]: 'HS256' is not one of \[",
    ),
    bad(
        "private-key-material",
        edit(GOOD, URL_KEYS, inline_jwks({**RSA_KEY.jwk, "d": "c2VjcmV0"})),
        rf"^bad\.toml: {INLINE_KEY}\[0\]: contains private key material",
    ),
    bad(
        "symmetric-oct-key",
        edit(GOOD, URL_KEYS, inline_jwks({"kty": "oct", "kid": "hmac-1", "k": "c2VjcmV0"})),
        r"^bad\.toml: realms\[0\]\.keys\.jwks\.keys\[0\]\.kty: 'oct' is not one of \['RSA', 'EC'\]$",
    ),
    bad(
        "duplicate-kid",
        edit(GOOD, URL_KEYS, inline_jwks(RSA_KEY.jwk, {**OTHER_RSA_KEY.jwk, "kid": RSA_KEY.kid})),
        rf"^bad\.toml: {INLINE_KEY}\[1\]\.kid: '{re.escape(RSA_KEY.kid)}' appears twice$",
    ),
    bad(
        "jwks-file-missing",
        edit(GOOD, URL_KEYS, 'keys = { jwks_file = "missing.json" }'),
        r"^bad\.toml: realms\[0\]\.keys\.jwks_file: cannot read \S*/tenants/missing\.json: No such file or directory$",
    ),
    bad(
        "jwks-file-not-json",
        edit(GOOD, URL_KEYS, 'keys = { jwks_file = "alpha-keys.json" }'),
        r"^bad\.toml: realms\[0\]\.keys\.jwks_file: \S*/tenants/alpha-keys\.json is not JSON: ",
        {"alpha-keys.json": "keys: [not json]"},
    ),
    bad(
        "duplicate-realm-name",
        GOOD + edit(GOOD_REALM, ALPHA_ISSUER, "https://idp.alpha.test/realms/other"),
        r"^bad\.toml: realms\[1\]\.name: realm 'alpha-main' is defined twice$",
    ),
    bad(
        "rsa-key-in-es256-realm",
        edit(GOOD, URL_KEYS, 'algorithms = ["ES256"]\n' + inline_jwks(RSA_KEY.jwk)),
        rf"^bad\.toml: {INLINE_KEY}\[0\]: key cannot verify any of the realm's algorithms \['ES256'\]$",
    ),
]


def test_the_base_document_of_the_bad_cases_is_valid(tmp_path: Path) -> None:
    tenants_dir = write(tmp_path / "tenants", {"bad.toml": GOOD})
    assert [t.slug for t in load_tenant_files(tenants_dir, tmp_path / "data")] == ["alpha"]


@pytest.mark.parametrize(("document", "files", "match"), BAD_CASES)
def test_bad_tenant_file_is_refused_naming_file_and_field(
    tmp_path: Path, document: str, files: dict[str, str], match: str
) -> None:
    tenants_dir = write(tmp_path / "tenants", {"bad.toml": document, **files})

    with pytest.raises(TenantFileError, match=match):
        load_tenant_files(tenants_dir, tmp_path / "data")


# Regressions of loader bugs found by these tests: a key error's field path, and `$` matching before a trailing
# newline (patterns now run on RE2, where `$` is the end of the text, as in JSON Schema's ECMA-262 regexes).


def test_inline_key_error_names_the_jwks_field(tmp_path: Path) -> None:
    document = edit(GOOD, URL_KEYS, inline_jwks({**RSA_KEY.jwk, "d": "c2VjcmV0"}))
    path = write(tmp_path / "tenants", {"bad.toml": document}) / "bad.toml"

    with pytest.raises(TenantFileError, match=r"^bad\.toml: realms\[0\]\.keys\.jwks\.keys\[0\]: contains private"):
        load_tenant_file(path, tmp_path / "data")


def test_id_with_trailing_newline_is_refused_as_a_tenant_file_error(tmp_path: Path) -> None:
    path = write(tmp_path / "tenants", {"bad.toml": edit(GOOD, f'"{ALPHA_ID}"', f'"{ALPHA_ID}\\n"')}) / "bad.toml"

    with pytest.raises(TenantFileError, match=r"^bad\.toml: id: "):
        load_tenant_file(path, tmp_path / "data")


def test_slug_with_trailing_newline_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "tenants", {"bad.toml": edit(GOOD, 'slug = "alpha"', 'slug = "alpha\\n"')}) / "bad.toml"

    with pytest.raises(TenantFileError, match=r"^bad\.toml: slug: "):
        load_tenant_file(path, tmp_path / "data")


# --- 4. Cross-file conflicts and the tenants folder -----------------------------------------------------------

BETA_ID = "22222222-2222-4222-8222-222222222222"
BETA_ISSUER = "https://idp.beta.test/realms/beta-main"
BETA = edit(edit(edit(GOOD, ALPHA_ID, BETA_ID), 'slug = "alpha"', 'slug = "beta"'), ALPHA_ISSUER, BETA_ISSUER)


def test_two_distinct_tenant_files_load_in_file_name_order(tmp_path: Path) -> None:
    tenants_dir = write(tmp_path / "tenants", {"b.toml": BETA, "a.toml": GOOD, "notes.md": "not a tenant"})

    tenants = load_tenant_files(tenants_dir, tmp_path / "data")

    assert [(str(t.id), t.slug, t.realms[0].issuer) for t in tenants] == [
        (ALPHA_ID, "alpha", ALPHA_ISSUER),
        (BETA_ID, "beta", BETA_ISSUER),
    ]


@pytest.mark.parametrize(
    ("second", "match"),
    [
        pytest.param(
            edit(BETA, BETA_ID, ALPHA_ID),
            rf"^b\.toml: id: '{ALPHA_ID}' is already used by a\.toml$",
            id="same-id",
        ),
        pytest.param(
            edit(BETA, 'slug = "beta"', 'slug = "alpha"'),
            r"^b\.toml: slug: 'alpha' is already used by a\.toml$",
            id="same-slug",
        ),
        pytest.param(
            edit(BETA, BETA_ISSUER, ALPHA_ISSUER),
            rf"^b\.toml: realms\.issuer: '{re.escape(ALPHA_ISSUER)}' is already used by a\.toml$",
            id="same-issuer",
        ),
    ],
)
def test_cross_file_conflict_names_the_later_file(tmp_path: Path, second: str, match: str) -> None:
    tenants_dir = write(tmp_path / "tenants", {"a.toml": GOOD, "b.toml": second})

    with pytest.raises(TenantFileError, match=match):
        load_tenant_files(tenants_dir, tmp_path / "data")


def test_same_id_in_another_spelling_is_a_conflict(tmp_path: Path) -> None:
    tenants_dir = write(tmp_path / "tenants", {"a.toml": GOOD, "b.toml": edit(BETA, BETA_ID, ALPHA_ID.upper())})

    with pytest.raises(TenantFileError, match=rf"^b\.toml: id: '{ALPHA_ID}' is already used by a\.toml$"):
        load_tenant_files(tenants_dir, tmp_path / "data")


def test_empty_tenants_folder_is_refused(tmp_path: Path) -> None:
    tenants_dir = write(tmp_path / "tenants", {"README.md": "tenant files go here"})

    with pytest.raises(TenantFileError, match=rf"^{re.escape(str(tenants_dir))}: no tenant files \(\*\.toml\)$"):
        load_tenant_files(tenants_dir, tmp_path / "data")


def test_missing_tenants_folder_is_refused(tmp_path: Path) -> None:
    tenants_dir = tmp_path / "no-such-folder"

    with pytest.raises(TenantFileError, match=rf"^{re.escape(str(tenants_dir))}: tenants folder not found$"):
        load_tenant_files(tenants_dir, tmp_path / "data")


# --- 5. Offboarding (`disabled`) and browser origins (`[cors]`) ----------------------------------------------


def test_disabled_flag_and_allowed_origins_load(tmp_path: Path) -> None:
    document = edit(GOOD, 'name = "Alpha Ltd"\n', 'name = "Alpha Ltd"\ndisabled = true\n')
    document += '\n[cors]\nallowed_origins = ["https://app.alpha.test", "http://localhost:3000", "http://[::1]:8080"]\n'
    path = write(tmp_path / "tenants", {"alpha.toml": document}) / "alpha.toml"

    tenant = load_tenant_file(path, tmp_path / "data")

    assert tenant.disabled is True
    assert tenant.allowed_origins == ("http://[::1]:8080", "http://localhost:3000", "https://app.alpha.test")


def test_a_tenant_is_enabled_and_allows_no_origin_by_default(tmp_path: Path) -> None:
    tenant = load_tenant_file(write(tmp_path / "tenants", {"alpha.toml": GOOD}) / "alpha.toml", tmp_path / "data")

    assert (tenant.disabled, tenant.allowed_origins) == (False, ())


NO_SCHEME = "the scheme must be http or https, followed by a host name or address and an optional port"
NOT_AN_ORIGIN = r"^bad\.toml: cors\.allowed_origins\[0\]: '{}' is not an exact origin \(scheme://host\[:port\]\): {}$"


@pytest.mark.parametrize(
    ("origin", "problem"),
    [
        ("https://*.alpha.test", "wildcards are not allowed, list each origin"),
        ("*", "wildcards are not allowed, list each origin"),
        ("https://app.alpha.test/", "it must not have a path or a trailing slash"),
        ("https://app.alpha.test/login", "it must not have a path or a trailing slash"),
        ("https://App.Alpha.test", "browsers send it in lowercase"),
        ("https://app.alpha.test:443", "browsers omit the default port 443"),
        ("http://app.alpha.test:80", "browsers omit the default port 80"),
        ("https://app.alpha.test:70000", "the port must be at most 65535"),
        ("ftp://app.alpha.test", NO_SCHEME),
        ("app.alpha.test", NO_SCHEME),
        ("null", NO_SCHEME),
    ],
)
def test_an_allowed_origin_must_be_exact(tmp_path: Path, origin: str, problem: str) -> None:
    document = GOOD + f'\n[cors]\nallowed_origins = ["{origin}"]\n'
    path = write(tmp_path / "tenants", {"bad.toml": document}) / "bad.toml"

    with pytest.raises(TenantFileError, match=NOT_AN_ORIGIN.format(re.escape(origin), re.escape(problem))):
        load_tenant_file(path, tmp_path / "data")


@pytest.mark.parametrize(
    ("addition", "match"),
    [
        ('\n[cors]\norigins = ["https://app.alpha.test"]\n', r"^bad\.toml: cors: "),
        ('\n[cors]\nallowed_origins = "https://app.alpha.test"\n', r"^bad\.toml: cors\.allowed_origins: "),
        (
            '\n[cors]\nallowed_origins = ["https://app.alpha.test", "https://app.alpha.test"]\n',
            r"^bad\.toml: cors\.allowed_origins: array items are not unique$",
        ),
    ],
    ids=["unknown-key", "not-a-list", "repeated"],
)
def test_a_malformed_cors_table_is_refused(tmp_path: Path, addition: str, match: str) -> None:
    path = write(tmp_path / "tenants", {"bad.toml": GOOD + addition}) / "bad.toml"

    with pytest.raises(TenantFileError, match=match):
        load_tenant_file(path, tmp_path / "data")


def test_disabled_must_be_a_boolean(tmp_path: Path) -> None:
    document = edit(GOOD, 'name = "Alpha Ltd"\n', 'name = "Alpha Ltd"\ndisabled = "yes"\n')
    path = write(tmp_path / "tenants", {"bad.toml": document}) / "bad.toml"

    with pytest.raises(TenantFileError, match=r"^bad\.toml: disabled: 'yes' is not of type 'boolean'$"):
        load_tenant_file(path, tmp_path / "data")


# --- 6. Attachments (`[attachments]`) ---------------------------------------------------------------------------


def test_attachment_limits_default_each_on_its_own(tmp_path: Path) -> None:
    default = load_tenant_file(write(tmp_path / "tenants", {"alpha.toml": GOOD}) / "alpha.toml", tmp_path / "data")
    assert default.attachments == AttachmentLimits()
    assert (default.attachments.max_file_bytes, default.attachments.max_ticket_bytes) == (10 * 2**20, 100 * 2**20)
    document = GOOD + '\n[attachments]\nmax_file_bytes = 2048\nallowed_types = ["text/plain", "image/*"]\n'
    path = write(tmp_path / "more", {"alpha.toml": document}) / "alpha.toml"

    tenant = load_tenant_file(path, tmp_path / "data")

    assert tenant.attachments == AttachmentLimits(
        max_file_bytes=2048, max_ticket_bytes=100 * 2**20, allowed_types=("image/*", "text/plain")
    )


@pytest.mark.parametrize(
    ("addition", "match"),
    [
        ("max_file_bytes = 0", r"^bad\.toml: attachments\.max_file_bytes: 0 is less than the minimum of 1$"),
        ("max_file_bytes = 2147483648", r"^bad\.toml: attachments\.max_file_bytes: 2147483648 is greater than "),
        ("allowed_types = []", r"^bad\.toml: attachments\.allowed_types: \[\] should be non-empty$"),
        ('allowed_types = ["image"]', r"^bad\.toml: attachments\.allowed_types\[0\]: 'image' does not match "),
        ('allowed_types = ["*/*"]', r"^bad\.toml: attachments\.allowed_types\[0\]: '\*/\*' does not match "),
        ("max_bytes = 5", r"^bad\.toml: attachments: Additional properties are not allowed"),
    ],
)
def test_bad_attachment_limits_are_refused_naming_the_field(tmp_path: Path, addition: str, match: str) -> None:
    path = write(tmp_path / "tenants", {"bad.toml": GOOD + f"\n[attachments]\n{addition}\n"}) / "bad.toml"

    with pytest.raises(TenantFileError, match=match):
        load_tenant_file(path, tmp_path / "data")


# --- 7. Rate limits (`[rate_limits]`) ---------------------------------------------------------------------------


def test_rate_limits_default_to_seed_004s_plans(tmp_path: Path) -> None:
    tenant = load_tenant_file(write(tmp_path / "tenants", {"alpha.toml": GOOD}) / "alpha.toml", tmp_path / "data")
    assert tenant.rate_limits == RateLimits(
        plan="standard", plans={"standard": 100, "premium": 300}, clients={}, ticket_writes_per_minute=60
    )
    assert tenant.rate_limits.requests_per_minute("anyone") == 100


def test_rate_limits_add_plans_redefine_them_and_give_clients_their_own(tmp_path: Path) -> None:
    document = GOOD + (
        "\n[rate_limits]\n"
        'plan = "team"\n'
        "plans = { team = 1000, premium = 500 }\n"
        'clients = { "service-account-billing" = "premium", "someone@example.com" = "standard" }\n'
        "ticket_writes_per_minute = 10\n"
    )
    path = write(tmp_path / "tenants", {"alpha.toml": document}) / "alpha.toml"

    limits = load_tenant_file(path, tmp_path / "data").rate_limits

    assert limits == RateLimits(
        plan="team",
        plans={"standard": 100, "premium": 500, "team": 1000},
        clients={"service-account-billing": "premium", "someone@example.com": "standard"},
        ticket_writes_per_minute=10,
    )
    assert [limits.requests_per_minute(c) for c in ("x", "service-account-billing", "someone@example.com")] == [
        1000,
        500,
        100,
    ]


def test_the_v1_mapping_defaults_each_setting_on_its_own(tmp_path: Path) -> None:
    default = load_tenant_file(write(tmp_path / "tenants", {"alpha.toml": GOOD}) / "alpha.toml", tmp_path / "data")
    assert default.v1 == V1Config()
    assert default.v1.tickets.ticket_type == "FAC"
    assert dict(default.v1.tickets.fields) == {name: name for name in V1_TICKET_FIELDS}
    document = GOOD + (
        '\n[v1.tickets]\nticket_type = "REQ"\nfields = { notes = "remarks", category = "kind" }\n'
        '[v1.permissions]\n"ticket.agent" = ["agent", "admin"]\n'
    )
    path = write(tmp_path / "more", {"alpha.toml": document}) / "alpha.toml"

    tenant = load_tenant_file(path, tmp_path / "data")

    assert tenant.v1.tickets == V1TicketMapping(
        ticket_type="REQ",
        fields=(
            ("attachments", "attachments"),
            ("category", "kind"),
            ("description", "description"),
            ("notes", "remarks"),
            ("title", "title"),
        ),
    )
    assert tenant.v1.permissions == (("ticket.agent", ("admin", "agent")),)


def test_the_seed_004_mapping_defaults_each_setting_on_its_own(tmp_path: Path) -> None:
    default = load_tenant_file(write(tmp_path / "tenants", {"alpha.toml": GOOD}) / "alpha.toml", tmp_path / "data")
    assert default.v1.platform == V1PlatformMapping(
        ticket_type="REQ",
        fields=(("description", "description"), ("priority", "priority"), ("tags", "tags"), ("title", "title")),
        priorities=(("low", "low"), ("medium", "normal"), ("high", "high"), ("critical", "urgent")),
        statuses=(
            ("open", ("new",)),
            ("in_progress", ("open", "pending reminder")),
            ("resolved", ("pending close",)),
            ("closed", ("closed", "merged", "removed")),
        ),
    )
    document = GOOD + (
        '\n[v1.platform]\nticket_type = "HELP"\nfields = { title = "subject" }\n'
        'priorities = { critical = "p1" }\nstatuses = { resolved = ["solved", "done"] }\n'
    )
    path = write(tmp_path / "more", {"alpha.toml": document}) / "alpha.toml"

    platform = load_tenant_file(path, tmp_path / "data").v1.platform

    assert platform.ticket_type == "HELP"
    assert dict(platform.fields) == {
        "description": "description",
        "priority": "priority",
        "tags": "tags",
        "title": "subject",
    }
    assert platform.priorities == (("low", "low"), ("medium", "normal"), ("high", "high"), ("critical", "p1"))
    assert dict(platform.statuses)["resolved"] == ("solved", "done")
    assert dict(platform.statuses)["open"] == ("new",)


def test_a_state_shows_the_first_status_that_names_it_in_any_case_else_its_own_name() -> None:
    """The rule /api/v1/tickets and webhook bodies share (seed_status)."""
    mapping = V1PlatformMapping(
        statuses=(("open", ("New",)), ("in_progress", ("open", "Waiting")), ("resolved", ("waiting", "Solved")))
    )
    by_state = mapping.status_of_state()
    assert by_state == {"new": "open", "open": "in_progress", "waiting": "in_progress", "solved": "resolved"}
    shown = [seed_status(by_state, name) for name in ("NEW", "Open", "WAITING", "solved", "Escalated", None)]
    assert shown == ["open", "in_progress", "in_progress", "resolved", "Escalated", None]


@pytest.mark.parametrize(
    ("addition", "match"),
    [
        ('plan = "gold"', r"^bad\.toml: rate_limits\.plan: no plan 'gold' \(plans: premium, standard\)$"),
        (
            'clients = { "sa-x" = "gold" }',
            r"^bad\.toml: rate_limits\.clients\.sa-x: no plan 'gold' \(plans: premium, standard\)$",
        ),
        ("plans = { team = 0 }", r"^bad\.toml: rate_limits\.plans\.team: 0 is less than the minimum of 1$"),
        ("plans = { Team = 10 }", r"^bad\.toml: rate_limits\.plans: 'Team' does not match "),
        ("ticket_writes_per_minute = 0", r"^bad\.toml: rate_limits\.ticket_writes_per_minute: 0 is less than the "),
        ("per_minute = 5", r"^bad\.toml: rate_limits: Additional properties are not allowed"),
    ],
    ids=["unknown-plan", "unknown-client-plan", "zero", "plan-name", "zero-writes", "unknown-key"],
)
def test_bad_rate_limits_are_refused_naming_the_field(tmp_path: Path, addition: str, match: str) -> None:
    path = write(tmp_path / "tenants", {"bad.toml": GOOD + f"\n[rate_limits]\n{addition}\n"}) / "bad.toml"

    with pytest.raises(TenantFileError, match=match):
        load_tenant_file(path, tmp_path / "data")


def test_the_shipped_example_tenants_declare_a_development_plan(tmp_path: Path) -> None:
    """A few thousand requests a minute: the README walk-through never trips it, and the headers still show it."""
    for tenant in load_tenant_files(SHIPPED_TENANTS, tmp_path / "data"):
        assert (tenant.rate_limits.plan, tenant.rate_limits.requests_per_minute("dev-agent")) == ("development", 5000)
        assert tenant.rate_limits.ticket_writes_per_minute == 1000


# --- builtin realms -------------------------------------------------------------------------------------------

BUILTIN_REALM = """
[[realms]]
name = "alpha-sso"
kind = "builtin"
issuer = "https://tickets.alpha.test/realms/alpha-sso"
audience = "ticketing-api"
algorithms = ["ES256"]
keys = { generate = "ES256" }
"""


def test_a_builtin_realm_publishes_its_generated_key_and_signs_with_it(tmp_path: Path) -> None:
    path = write(tmp_path / "tenants", {"alpha.toml": GOOD + BUILTIN_REALM}) / "alpha.toml"
    realm = load_tenant_file(path, tmp_path / "data").realms[1]
    assert (realm.kind, realm.builtin, realm.dev_key_algorithm, realm.private_key_file) == (
        "builtin",
        True,
        None,
        None,
    )
    [published] = realm.jwks["keys"]  # type: ignore[index]
    assert realm.signing_kid == published["kid"]
    # Loaded again, the same key: it is generated once.
    assert load_tenant_file(path, tmp_path / "data").realms[1] == realm


def test_a_builtin_realm_signs_with_a_configured_key_file(tmp_path: Path) -> None:
    folder = write(tmp_path / "tenants", {"signing.pem": EC_KEY.private_pem})
    document = GOOD + BUILTIN_REALM.replace('{ generate = "ES256" }', '{ private_key_file = "signing.pem" }')
    realm = load_tenant_file(write(folder, {"alpha.toml": document}) / "alpha.toml", tmp_path / "data").realms[1]
    assert (realm.signing_kid, realm.private_key_file) == (EC_KEY.kid, str((folder / "signing.pem").resolve()))
    assert realm.jwks == {"keys": [EC_KEY.jwk]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda doc: doc.replace("realms/alpha-sso", "realms/other"),
            "alpha.toml: realms[1].issuer: a builtin realm's issuer is the URL of its endpoints and must end with "
            "/realms/alpha-sso",
        ),
        (
            lambda doc: doc + BUILTIN_REALM.replace("alpha-sso", "alpha-sso2"),
            "alpha.toml: realms: at most one realm may be builtin (sign-in names the tenant only)",
        ),
        (
            lambda doc: doc.replace('{ generate = "ES256" }', '{ jwks_url = "https://idp.alpha.test/jwks" }'),
            "alpha.toml: realms[1].keys.jwks_url: a builtin realm signs its own tokens: keys must be generate or "
            "private_key_file",
        ),
        (
            lambda doc: doc.replace('{ generate = "ES256" }', '{ private_key_file = "missing.pem" }'),
            "alpha.toml: realms[1].keys.private_key_file: cannot read",
        ),
        (
            lambda doc: doc.replace(GOOD_TENANT_URL_KEYS, 'keys = { private_key_file = "x.pem" }'),
            "alpha.toml: realms[0].keys.private_key_file: only a builtin realm signs with a private key of its own",
        ),
    ],
)
def test_bad_builtin_realms_are_refused_naming_the_field(tmp_path: Path, change: Any, message: str) -> None:
    path = write(tmp_path / "tenants", {"alpha.toml": change(GOOD + BUILTIN_REALM)}) / "alpha.toml"
    with pytest.raises(TenantFileError) as refused:
        load_tenant_file(path, tmp_path / "data")
    assert str(refused.value).startswith(message)


def test_a_builtin_realm_name_is_one_tenants_only(tmp_path: Path) -> None:
    beta = (
        (GOOD + BUILTIN_REALM.replace("tickets.alpha.test", "tickets.beta.test"))
        .replace(GOOD_TENANT_ID, "22222222-2222-4222-8222-222222222222")
        .replace('slug = "alpha"', 'slug = "beta"')
        .replace("idp.alpha.test", "idp.beta.test")
    )
    folder = write(tmp_path / "tenants", {"alpha.toml": GOOD + BUILTIN_REALM, "beta.toml": beta})
    with pytest.raises(TenantFileError) as refused:
        load_tenant_files(folder, tmp_path / "data")
    assert str(refused.value) == (
        "beta.toml: realms.name (of a builtin realm): 'alpha-sso' is already used by alpha.toml"
    )


@pytest.mark.parametrize(
    ("addition", "match"),
    [
        ('[v1.tickets]\nticket_type = "fac"', r"^bad\.toml: v1\.tickets\.ticket_type: "),
        ('[v1.tickets]\nfields = { priority = "priority" }', r"^bad\.toml: v1\.tickets\.fields: "),
        ('[v1.tickets]\nfields = { title = "Title!" }', r"^bad\.toml: v1\.tickets\.fields\.title: "),
        ('[v1.permissions]\n"ticket.owner" = ["agent"]', r"^bad\.toml: v1\.permissions: "),
        ('[v1.permissions]\n"admin.object" = []', r"^bad\.toml: v1\.permissions\.admin\.object: "),
        ("[v1]\ntickets = 1", r"^bad\.toml: v1\.tickets: "),
        ('[v1.platform]\nticket_type = "req"', r"^bad\.toml: v1\.platform\.ticket_type: "),
        ('[v1.platform]\nfields = { category = "category" }', r"^bad\.toml: v1\.platform\.fields: "),
        ('[v1.platform]\npriorities = { urgent = "urgent" }', r"^bad\.toml: v1\.platform\.priorities: "),
        ("[v1.platform]\nstatuses = { open = [] }", r"^bad\.toml: v1\.platform\.statuses\.open: "),
        ('[v1.platform]\nstatuses = { pending = ["new"] }', r"^bad\.toml: v1\.platform\.statuses: "),
    ],
)
def test_a_bad_v1_mapping_is_refused_naming_the_field(tmp_path: Path, addition: str, match: str) -> None:
    path = write(tmp_path / "tenants", {"bad.toml": GOOD + f"\n{addition}\n"}) / "bad.toml"

    with pytest.raises(TenantFileError, match=match):
        load_tenant_file(path, tmp_path / "data")
