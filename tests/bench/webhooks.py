"""The webhooks of `make bench`. As deployed, each bench tenant has one active subscription (to ticket.updated,
delivering to a receiver on loopback, tests/bench/sink.py) for every PATCH run, the headline ones included; after
each run the bench waits until every event of the run has arrived, and notes the lag from commit (the event's
`timestamp`) to receipt. What the subscription costs is measured by PATCH runs with it switched off and on in turn,
so that both see the same machine."""

from __future__ import annotations

import datetime
import statistics
import time
import uuid
from dataclasses import dataclass, field

import httpx

from tests.bench.environment import BenchError, BenchTenant, say
from tests.bench.seed import scalar
from tests.bench.sink import Sink
from tests.support import ADMIN_SCOPE, API, auth_headers, token

DRAIN_TIMEOUT_SECONDS = 120.0
TARGET_LAG_P99_SECONDS = 2.0
TARGET_PATCH_RATIO = 0.85
EVENTS = ["ticket.updated"]
# What is still to be delivered: events not yet dispatched, and pending deliveries (counted on the outbox's and the
# due index, with the condition that lets a statement use the latter: not a scan of every delivery kept).
UNFINISHED = """
SELECT (SELECT count(*) FROM ticket_event WHERE dispatched_at IS NULL)
     + (SELECT count(*) FROM webhook_delivery WHERE status = 'pending' AND next_attempt_at > '-infinity')
"""


@dataclass
class Delivered:
    """What arrived at the receiver for one PATCH run's events."""

    arrived: int  # events, each counted once however often it was sent
    per_second: float  # events arrived / (last arrival - the run's start)
    lags: list[float]  # seconds from each event's transaction to its first receipt
    undelivered: int  # events not yet dispatched and deliveries still pending when the drain gave up


@dataclass
class WebhookResults:
    runs: list[Delivered] = field(default_factory=list)

    @property
    def lags(self) -> list[float]:
        return [lag for run in self.runs for lag in run.lags]

    @property
    def undelivered(self) -> int:
        return sum(run.undelivered for run in self.runs)

    @property
    def per_second(self) -> float:
        return statistics.median(run.per_second for run in self.runs) if self.runs else 0.0

    def lag(self, quantile: float) -> float:
        ordered = sorted(self.lags)
        return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] if ordered else 0.0


def _committed_at(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class Subscriptions:
    """One subscription per bench tenant to the receiver, switched on and off through the API (of whichever server
    is running: they all share the database)."""

    def __init__(self, tenants: list[BenchTenant], receiver: Sink, dsn: str) -> None:
        self.tenants = tenants
        self.receiver = receiver
        self.dsn = dsn
        self.active = False
        self.results = WebhookResults()
        self._ids: dict[uuid.UUID, str] = {}
        self._admins = {
            t.spec.id: token(t.spec, roles=["admin"], scope=ADMIN_SCOPE, subject="bench-admin", ttl=3 * 3600)
            for t in tenants
        }

    def _call(self, method: str, url: str, tenant: BenchTenant, expected: int, body: dict[str, object]) -> str:
        response = httpx.request(
            method, url, headers=auth_headers(tenant.spec, self._admins[tenant.spec.id]), json=body, timeout=10
        )
        if response.status_code != expected:
            raise BenchError(f"{method} {url}: {response.status_code} {response.text[:300]}")
        return str(response.json()["id"])

    def create(self, server_url: str) -> None:
        body: dict[str, object] = {"url": self.receiver.url, "events": EVENTS, "description": "bench"}
        for tenant in self.tenants:
            self._ids[tenant.spec.id] = self._call("POST", f"{server_url}{API}/webhook", tenant, 201, body)
        self.active = True
        say(f"webhooks: one subscription per tenant to {self.receiver.url} ({', '.join(EVENTS)})")

    def switch(self, server_url: str, active: bool) -> None:
        body: dict[str, object] = {"url": self.receiver.url, "events": EVENTS, "description": "bench", "active": active}
        for tenant in self.tenants:
            self._call("PUT", f"{server_url}{API}/webhook/{self._ids[tenant.spec.id]}", tenant, 200, body)
        self.active = active

    def received(self) -> int:
        return len(self.receiver.arrivals())

    def drain(self, before: int, started: float) -> Delivered:
        """Wait (at most DRAIN_TIMEOUT_SECONDS) until every committed event is dispatched and no delivery is pending,
        which takes in the events of requests wrk left in flight, and a delivery is marked delivered only once the
        receiver has answered: what a PATCH run started at `started` (time.time()) delivered, counted from the
        receiver's `before`-th request on."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        while (left := int(scalar(self.dsn, UNFINISHED))) and time.monotonic() < deadline:
            time.sleep(0.05)
        first: dict[str, tuple[float, str]] = {}
        for at, stamp, webhook_id in self.receiver.arrivals()[before:]:
            first.setdefault(webhook_id, (at, stamp))
        finished = max((at for at, _ in first.values()), default=started)
        return Delivered(
            len(first),
            len(first) / max(finished - started, 1e-9),
            [at - _committed_at(stamp) for at, stamp in first.values()],
            left,
        )


def report_lines(
    hooks: WebhookResults, on_rps: float, off_rps: float, cpu_per_event: dict[str, float]
) -> tuple[list[str], list[tuple[str, bool, str]], str]:
    """Report lines, checks, and the key=value fields of the machine-readable line: `on_rps` and `off_rps` are the
    medians of the alternating PATCH runs with the subscriptions on and off."""
    ratio = on_rps / off_rps if off_rps else 0.0
    p50, p99 = hooks.lag(0.5), hooks.lag(0.99)
    costs = ", ".join(f"{name} {1000 * value:.2f} ms" for name, value in cpu_per_event.items())
    lines = [
        f"webhooks (every PATCH run above delivers to one subscription per tenant): delivered {hooks.per_second:.1f} "
        f"events/s (median of {len(hooks.runs)} runs); lag from the event's timestamp to its receipt p50 "
        f"{1000 * p50:.0f} ms, p99 {1000 * p99:.0f} ms; still to deliver after waiting {DRAIN_TIMEOUT_SECONDS:.0f} s: "
        f"{hooks.undelivered}",
        f"webhooks' cost (alternating runs): PATCH with the subscriptions on {on_rps:.1f} ok/s, off {off_rps:.1f} "
        f"ok/s: {ratio:.3f}; CPU per delivered event (on minus off, per request): {costs}",
    ]
    checks = [
        (f"PATCH with a webhook >= {TARGET_PATCH_RATIO:.2f} x without", ratio >= TARGET_PATCH_RATIO, f"{ratio:.3f}"),
        (
            f"webhook lag p99 <= {TARGET_LAG_P99_SECONDS:.0f} s",
            p99 <= TARGET_LAG_P99_SECONDS and hooks.undelivered == 0,
            f"{1000 * p99:.0f} ms",
        ),
    ]
    fields = (
        f"hook_patch_rps={on_rps:.1f} nohook_patch_rps={off_rps:.1f} hook_patch_ratio={ratio:.3f} "
        f"hook_delivered_per_s={hooks.per_second:.1f} hook_lag_p50_ms={1000 * p50:.0f} hook_lag_p99_ms={1000 * p99:.0f}"
    )
    return lines, checks, fields
