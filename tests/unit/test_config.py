from pathlib import Path

import pytest

from app.config import ConfigError, load_settings, trusted_proxies


def test_defaults_without_environment() -> None:
    settings = load_settings({})
    assert (settings.database_url, settings.host, settings.port) == (None, "127.0.0.1", 8000)
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.request_header_timeout_seconds == 10.0
    assert settings.request_body_timeout_seconds == 10.0


def test_environment_overrides_are_typed() -> None:
    settings = load_settings({"PORT": "9001", "HOST": "0.0.0.0", "DATA_DIR": "/srv/data", "MAX_BODY_BYTES": "2048"})
    assert (settings.port, settings.host, settings.data_dir, settings.max_body_bytes) == (
        9001,
        "0.0.0.0",
        Path("/srv/data"),
        2048,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("WORKERS", "two"),
        ("MAX_BODY_BYTES", "0"),
        ("PENDING_CLOSE_INTERVAL_SECONDS", "0"),
        ("PENDING_CLOSE_INTERVAL_SECONDS", "soon"),
        ("PENDING_CLOSE_INTERVAL_SECONDS", "nan"),
        ("PENDING_CLOSE_INTERVAL_SECONDS", "inf"),
        ("DB_ACQUIRE_TIMEOUT_SECONDS", "0"),
        ("DB_ACQUIRE_TIMEOUT_SECONDS", "-1"),
        ("DB_ACQUIRE_TIMEOUT_SECONDS", "nan"),
        ("REQUEST_HEADER_TIMEOUT_SECONDS", "0"),
        ("REQUEST_HEADER_TIMEOUT_SECONDS", "-1"),
        ("REQUEST_HEADER_TIMEOUT_SECONDS", "inf"),
        ("REQUEST_HEADER_TIMEOUT_SECONDS", "soon"),
        ("REQUEST_BODY_TIMEOUT_SECONDS", "0"),
        ("REQUEST_BODY_TIMEOUT_SECONDS", "nan"),
        ("FORWARDED_ALLOW_IPS", "*"),
        ("FORWARDED_ALLOW_IPS", "10.0.0.1, proxy.internal"),
    ],
)
def test_malformed_variable_is_named(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_settings({variable: value})


@pytest.mark.parametrize("value", ["0", "-5", "inf", "never"])
def test_the_idempotency_key_lifetime_must_be_a_positive_number(value: str) -> None:
    with pytest.raises(ConfigError, match="IDEMPOTENCY_KEY_TTL_SECONDS"):
        load_settings({"IDEMPOTENCY_KEY_TTL_SECONDS": value})


def test_trusted_proxies_are_addresses_or_networks() -> None:
    settings = load_settings({"FORWARDED_ALLOW_IPS": " 10.0.0.1, 192.168.0.0/16 ,"})
    assert trusted_proxies(settings) == ["10.0.0.1", "192.168.0.0/16"]
    assert trusted_proxies(load_settings({})) == []


def test_attachments_are_kept_in_the_data_folder_unless_an_object_store_is_named() -> None:
    assert load_settings({}).attachment_storage == "filesystem"
    settings = load_settings(
        {
            "ATTACHMENT_STORAGE": "s3",
            "ATTACHMENT_S3_BUCKET": "tickets",
            "ATTACHMENT_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "ATTACHMENT_S3_PREFIX": "prod/",
        }
    )
    assert (settings.attachment_storage, settings.attachment_s3_bucket, settings.attachment_s3_prefix) == (
        "s3",
        "tickets",
        "prod/",
    )


@pytest.mark.parametrize(
    ("environment", "variable"),
    [
        ({"ATTACHMENT_STORAGE": "ftp"}, "ATTACHMENT_STORAGE"),
        ({"ATTACHMENT_STORAGE": "s3"}, "ATTACHMENT_S3_BUCKET"),
        ({"ATTACHMENT_SWEEP_INTERVAL_SECONDS": "0"}, "ATTACHMENT_SWEEP_INTERVAL_SECONDS"),
        ({"ATTACHMENT_ORPHAN_GRACE_SECONDS": "-1"}, "ATTACHMENT_ORPHAN_GRACE_SECONDS"),
        ({"ATTACHMENT_ORPHAN_GRACE_SECONDS": "nan"}, "ATTACHMENT_ORPHAN_GRACE_SECONDS"),
    ],
)
def test_malformed_attachment_settings_are_named(environment: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_settings(environment)
