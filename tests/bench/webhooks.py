"""The webhook part of `make bench`: PATCH throughput with one active subscription per tenant (every update is
delivered to a receiver on loopback) against the same server's PATCH throughput without, and the lag from commit
(the event's `timestamp`) to receipt."""

from __future__ import annotations

import datetime
import statistics
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from tests.bench.environment import BenchError, say
from tests.bench.sink import Sink
from tests.support import ADMIN_SCOPE, API, auth_headers, token

if TYPE_CHECKING:
    from tests.bench.__main__ import Bench

DRAIN_TIMEOUT_SECONDS = 120.0
TARGET_LAG_P99_SECONDS = 2.0
TARGET_PATCH_RATIO = 0.85


@dataclass
class WebhookResults:
    patch_rps: list[float] = field(default_factory=list)
    delivered_per_second: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    undelivered: int = 0

    @property
    def rps(self) -> float:
        return statistics.median(self.patch_rps) if self.patch_rps else 0.0

    def lag(self, quantile: float) -> float:
        if not self.lags:
            return 0.0
        ordered = sorted(self.lags)
        return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


def _committed_at(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def measure_webhooks(bench: Bench, seconds: float, repeats: int, warmup_seconds: float) -> WebhookResults:
    """With the bench's server running: subscribe each tenant to ticket.updated, then PATCH as before; after each run
    wait until every event of the run has arrived."""
    assert bench.server is not None
    results = WebhookResults()
    with Sink() as receiver:
        for tenant in bench.tenants:
            admin = token(tenant.spec, roles=["admin"], scope=ADMIN_SCOPE, subject="bench-admin", ttl=3600)
            response = httpx.post(
                f"{bench.server.url}{API}/webhook",
                headers=auth_headers(tenant.spec, admin),
                json={"url": receiver.url, "events": ["ticket.updated"], "description": "bench"},
                timeout=10,
            )
            if response.status_code != 201:
                raise BenchError(f"POST webhook: {response.status_code} {response.text[:300]}")
        say(f"webhooks: one subscription per tenant to {receiver.url}; warm-up {warmup_seconds} s")
        warm = bench.wrk_patch(warmup_seconds, "hook warm-up")
        _drain(receiver, int(warm.extra.get("events", 0)))
        for attempt in range(1, repeats + 1):
            before = len(receiver.arrivals())
            started = time.time()
            run = bench.wrk_patch(seconds, f"PATCH+hook #{attempt}")
            events = int(run.extra.get("events", 0))
            arrived = _drain(receiver, before + events)[before:]
            finished = max((at for at, _ in arrived), default=started)
            results.patch_rps.append(run.rps)
            results.delivered_per_second.append(len(arrived) / max(finished - started, 1e-9))
            results.lags += [at - _committed_at(stamp) for at, stamp in arrived]
            results.undelivered += max(0, events - len(arrived))
            say(
                f"  PATCH+hook #{attempt}: {run.rps:9.1f} ok/s, {events} events, delivered {len(arrived)} at "
                f"{results.delivered_per_second[-1]:.1f}/s, lag p50 {1000 * results.lag(0.5):.0f} ms p99 "
                f"{1000 * results.lag(0.99):.0f} ms (so far)"
            )
    return results


def _drain(receiver: Sink, count: int) -> list[tuple[float, str]]:
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while len(receiver.arrivals()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return receiver.arrivals()


def report_lines(webhooks: WebhookResults, patch_rps: float) -> tuple[list[str], list[tuple[str, bool, str]], str]:
    """Report lines, checks, and the key=value fields of the machine-readable line."""
    ratio = webhooks.rps / patch_rps if patch_rps else 0.0
    delivered = statistics.median(webhooks.delivered_per_second) if webhooks.delivered_per_second else 0.0
    p50, p99 = webhooks.lag(0.5), webhooks.lag(0.99)
    lines = [
        f"webhooks: PATCH with one subscription per tenant {webhooks.rps:.1f} ok/s (runs "
        f"{', '.join(f'{r:.0f}' for r in webhooks.patch_rps)}) vs {patch_rps:.1f} without: {ratio:.3f}; delivered "
        f"{delivered:.1f} events/s; lag commit to receipt p50 {1000 * p50:.0f} ms, p99 {1000 * p99:.0f} ms; "
        f"undelivered after {DRAIN_TIMEOUT_SECONDS:.0f} s: {webhooks.undelivered}",
    ]
    checks = [
        (f"PATCH with a webhook >= {TARGET_PATCH_RATIO:.2f} x without", ratio >= TARGET_PATCH_RATIO, f"{ratio:.3f}"),
        (
            f"webhook lag p99 <= {TARGET_LAG_P99_SECONDS:.0f} s",
            p99 <= TARGET_LAG_P99_SECONDS and webhooks.undelivered == 0,
            f"{1000 * p99:.0f} ms",
        ),
    ]
    fields = (
        f"hook_patch_rps={webhooks.rps:.1f} hook_patch_ratio={ratio:.3f} hook_delivered_per_s={delivered:.1f} "
        f"hook_lag_p50_ms={1000 * p50:.0f} hook_lag_p99_ms={1000 * p99:.0f}"
    )
    return lines, checks, fields
