"""Where webhooks may go (app/webhook/ssrf.py), how they are signed (app/webhook/signing.py, checked against the
third-party `standardwebhooks`), and the WEBHOOK_* settings."""

from __future__ import annotations

import ipaddress
import time

import pytest
from standardwebhooks import Webhook

from app.config import ConfigError, load_settings
from app.webhook.signing import is_secret, new_secret, signature_header
from app.webhook.ssrf import ConnectError, GuardedClient, address_problem, url_problem
from tests.receiver import Receiver


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.0.10", "private"),
        ("fd00:ec2::254", "private"),
        ("::ffff:192.168.0.1", "private"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("100.64.0.1", "not a public address"),
        ("0.0.0.0", "private"),
        ("224.0.0.1", "not a public address"),
    ],
)
def test_non_public_addresses_are_refused(address: str, problem: str) -> None:
    found = address_problem(ipaddress.ip_address(address), allow_loopback=False)
    assert found is not None and problem in found


def test_public_addresses_pass_and_loopback_only_when_allowed() -> None:
    assert address_problem(ipaddress.ip_address("8.8.8.8"), allow_loopback=False) is None
    assert address_problem(ipaddress.ip_address("2606:4700::1111"), allow_loopback=False) is None
    assert address_problem(ipaddress.ip_address("127.0.0.1"), allow_loopback=True) is None
    assert address_problem(ipaddress.ip_address("10.0.0.1"), allow_loopback=True) is not None


@pytest.mark.parametrize(
    ("url", "allow_loopback", "problem"),
    [
        # A name that resolves to a loopback address (/etc/hosts), refused unless loopback is allowed.
        ("https://localhost/hook", False, "refused: localhost resolves to 127.0.0.1 is a loopback address"),
        ("http://localhost:8080/hook", False, "must be an https URL"),
        ("http://127.0.0.1:8080/hook", False, "must be an https URL"),
        ("http://8.8.8.8/hook", True, "plain http is allowed only to a loopback receiver"),
        ("https://does-not-exist.invalid/", False, "does not resolve"),
        ("https:///path", False, "must name a host"),
        ("https://8.8.8.8/#fragment", False, "must not have a fragment"),
        ("https://8.8.8.8/a b", False, "spaces or control characters"),
        ("https://8.8.8.8:99999/", False, "not a valid URL"),
        ("https://" + "a" * 2050, False, "at most 2048 characters"),
    ],
)
async def test_url_problems(url: str, allow_loopback: bool, problem: str) -> None:
    found = await url_problem(url, allow_loopback=allow_loopback)
    assert found is not None and problem in found, found


async def test_safe_urls_pass() -> None:
    assert await url_problem("https://8.8.8.8/hook", allow_loopback=False) is None
    assert await url_problem("http://localhost:8080/hook", allow_loopback=True) is None
    assert await url_problem("http://127.0.0.1:8080/hook", allow_loopback=True) is None


async def test_the_client_checks_the_address_it_connects_to() -> None:
    """With loopback not allowed, a request to a receiver on loopback (by name or address) never reaches it; plain
    http reaches only loopback."""
    with Receiver() as receiver:
        guarded = GuardedClient(allow_loopback=False)
        try:
            for url in (receiver.url, receiver.url.replace("127.0.0.1", "localhost")):
                with pytest.raises(ConnectError, match=r"^refused: .*loopback"):
                    await guarded.post(url, b"{}", {}, excerpt_bytes=1024)
        finally:
            await guarded.aclose()
        local = GuardedClient(allow_loopback=True, loopback_only=True)
        try:
            answer = await local.post(receiver.url, b"{}", {}, excerpt_bytes=1)
            assert (answer.status, answer.excerpt) == (200, b"o")  # the receiver answers "ok": its first byte
            with pytest.raises(ConnectError, match=r"^refused: 8\.8\.8\.8 is not a loopback address"):
                await local.post("http://8.8.8.8/hook", b"{}", {}, excerpt_bytes=1024)
        finally:
            await local.aclose()
        assert len(receiver.received()) == 1


def test_signatures_verify_with_the_standard_webhooks_library() -> None:
    old, new = new_secret(), new_secret()
    assert is_secret(old) and old.startswith("whsec_") and len(old) == len("whsec_") + 44
    body = b'{"event":"ticket.created"}'
    now = int(time.time())
    headers = {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(now),
        "webhook-signature": signature_header([new, old], "evt_1", now, body),
    }
    assert Webhook(new).verify(body, headers) == {"event": "ticket.created"}
    assert Webhook(old).verify(body, headers) == {"event": "ticket.created"}
    assert not is_secret("whsec_short") and not is_secret("secret")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WEBHOOK_TIMEOUT_SECONDS", "0"),
        ("WEBHOOK_RETRY_HORIZON_SECONDS", "-1"),
        ("WEBHOOK_RETRY_BASE_SECONDS", "nan"),
        ("WEBHOOK_SECRET_OVERLAP_SECONDS", "soon"),
        ("WEBHOOK_CONCURRENCY", "0"),
        ("WEBHOOK_ALLOW_LOOPBACK", "perhaps"),
    ],
)
def test_malformed_webhook_settings_are_named(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_settings({variable: value})


def test_webhook_defaults() -> None:
    settings = load_settings({})
    assert settings.webhook_allow_loopback is False and settings.webhook_delivery is True
    assert settings.webhook_retry_horizon_seconds == 3 * 86_400
    assert load_settings({"WEBHOOK_ALLOW_LOOPBACK": "true"}).webhook_allow_loopback is True
