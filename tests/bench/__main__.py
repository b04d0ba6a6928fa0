"""`make bench` (python -m tests.bench): see tests/bench/__init__.py. Ends with one key=value line.

BENCH_WORKERS=<n> skips the 1/2/3-worker trial and measures with n workers.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.config import Settings
from app.db.cluster import EmbeddedCluster
from app.ratelimit.server import PrivateRedis
from tests.bench.ceiling import Pgbench, PgbenchRun
from tests.bench.cpu import CpuMeter, postmaster_pid
from tests.bench.environment import (
    BENCH_LOG_LEVEL,
    BenchTenant,
    Server,
    ensure_wrk,
    find_pgbench,
    make_tenants,
    make_workspace,
    run_to_report,
    say,
    start_cluster,
    start_server,
)
from tests.bench.load import WrkResult, patch_tickets, run_wrk, write_get_data, write_patch_data
from tests.bench.seed import CUSTOMER_SHARE, SeedTarget, current_etags, execute, scalar, seed
from tests.bench.sink import Sink
from tests.bench.webhooks import Subscriptions, WebhookResults, report_lines

CONNECTIONS = 32
WRK_THREADS = 2
PER_TENANT = 50_000  # two tenants: 100,000 tickets
SECONDS = 10
REPEATS = 3
WARMUP_SECONDS = 3
TRIAL_SECONDS = 3
PROBE_SECONDS = 2
WORKER_CHOICES = (1, 2, 3)
# Issue 14's targets, on a 2-core machine at 32 connections.
PATCH_TARGET = 0.60
GET_TARGET = 0.50
TARGET_P99_MS = 20.0
# Rate limits may cost at most this share of PATCH throughput (issue 12).
TARGET_LIMITS_COST = 0.10
CPU_COLUMNS = ("server", "postgres", "wrk", "other")
# The runs whose deliveries the webhook figures are made of: the headline PATCH runs and the alternating runs with
# the subscriptions on (not warm-ups, the trial, or the rate-limit comparison, where a second server delivers too).
WEBHOOK_RUNS = ("PATCH #", "hooks on #")


@dataclass
class Measured:
    runs: list[WrkResult] = field(default_factory=list)

    def median(self, value: Callable[[WrkResult], float]) -> float:
        return statistics.median(value(run) for run in self.runs) if self.runs else 0.0

    @property
    def rps(self) -> float:
        return self.median(lambda r: r.rps)

    @property
    def p50(self) -> float:
        return self.median(lambda r: r.p50_ms)

    @property
    def p99(self) -> float:
        return self.median(lambda r: r.p99_ms)

    @property
    def non2xx(self) -> int:
        return sum(run.non2xx for run in self.runs)

    def cpu(self, name: str) -> float:
        return self.median(lambda r: r.cpu.get(name, 0.0))


@dataclass
class Results:
    workers: int = 0
    trial: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    probe: WrkResult | None = None
    patch: Measured = field(default_factory=Measured)
    get: Measured = field(default_factory=Measured)
    trivial: Measured = field(default_factory=Measured)
    ceiling: list[PgbenchRun] = field(default_factory=list)
    select: list[PgbenchRun] = field(default_factory=list)
    webhooks: WebhookResults = field(default_factory=WebhookResults)
    # PATCH with the webhook subscriptions on and off, in alternating runs.
    hooks_on: Measured = field(default_factory=Measured)
    hooks_off: Measured = field(default_factory=Measured)
    # PATCH with rate limits on (a plan no run reaches) and off, in alternating runs.
    limits_on: Measured = field(default_factory=Measured)
    limits_off: Measured = field(default_factory=Measured)
    notes: list[str] = field(default_factory=list)


class Bench:
    def __init__(self) -> None:
        self.workspace: Path | None = None
        self.cluster: EmbeddedCluster | None = None
        self.server: Server | None = None
        self.meter: CpuMeter | None = None
        self.tenants: list[BenchTenant] = []
        self.receiver: Sink | None = None
        self.hooks: Subscriptions | None = None
        self.targets: list[SeedTarget] = []
        self.results = Results()
        self.wrk = ""
        self.pgbench = ""

    # --- lifecycle ----------------------------------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        assert self.cluster is not None
        return self.cluster.dsn()

    def start_server(self, workers: int) -> Server:
        assert self.workspace is not None and self.cluster is not None
        self.stop_server()
        began = time.monotonic()
        self.server = start_server(self.workspace, self.dsn, workers)
        self.meter = CpuMeter(self.server.process.pid, postmaster_pid(self.cluster.pgdata))
        say(f"  server up with WORKERS={workers} on {self.server.url} in {time.monotonic() - began:.1f} s")
        return self.server

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def cleanup(self) -> None:
        say("cleaning up: server, webhook receiver, cluster, temp folder")
        try:
            self.stop_server()
            if self.receiver is not None:
                self.receiver.__exit__()
        finally:
            try:
                if self.cluster is not None:
                    self.cluster.stop()
                if self.workspace is not None:  # a server killed on timeout leaves its private Redis running
                    PrivateRedis(self.workspace / "data" / "redis").stop()
            finally:
                if self.workspace is not None:
                    shutil.rmtree(self.workspace, ignore_errors=True)

    # --- steps --------------------------------------------------------------------------------------------------

    def run(self) -> Results:
        started = time.monotonic()
        self.wrk = ensure_wrk()
        self.pgbench = find_pgbench()
        self.workspace = make_workspace()
        say(f"workspace {self.workspace}; wrk {self.wrk}; pgbench {self.pgbench}")
        self.tenants = make_tenants(self.workspace)
        self.cluster = start_cluster(self.workspace)
        settings = scalar(
            self.dsn,
            "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings "
            "WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', 'shared_buffers')",
        )
        version = scalar(self.dsn, "SHOW server_version")
        self.results.notes.append(f"cluster: PostgreSQL {version}, EmbeddedCluster(throwaway=False): {settings}")
        say(f"cluster up: {settings}")

        fixed = os.environ.get("BENCH_WORKERS")
        choices = [int(fixed)] if fixed else list(WORKER_CHOICES)
        server = self.start_server(choices[0])
        self.seed(server)
        self.subscribe(server)
        say(f"set-up done in {time.monotonic() - started:.0f} s")

        if len(choices) > 1:
            self.trial_workers(choices)
        else:
            self.results.workers = choices[0]
        if self.server is None or self.server.workers != self.results.workers:
            self.start_server(self.results.workers)
        self.measure()
        self.hooks_cost()
        self.limits_cost()
        self.results.webhooks = self.hooks.results
        self.stop_server()
        self.ceiling()
        say(f"measurements done in {time.monotonic() - started:.0f} s")
        return self.results

    def seed(self, server: Server) -> None:
        began = time.monotonic()
        for tenant in self.tenants:
            request_type = server.request_type(tenant)
            fields = {f["key"]: f["id"] for f in request_type["fields"]}  # type: ignore[attr-defined]
            self.targets.append(
                SeedTarget(
                    tenant.spec.id,
                    uuid.UUID(str(request_type["id"])),
                    int(str(request_type["version"])),
                    fields,
                    tenant.spec.realms[0].name,
                )
            )
        seed(self.dsn, self.targets, PER_TENANT)
        total = scalar(self.dsn, "SELECT count(*) FROM ticket")
        say(
            f"seeded {total} tickets ({PER_TENANT} REQ tickets in each of {len(self.tenants)} tenants, field UUIDs "
            f"from GET /ticket-type) and ran VACUUM ANALYZE in {time.monotonic() - began:.1f} s"
        )

    def subscribe(self, server: Server) -> None:
        """As deployed: one active webhook subscription per tenant, to a receiver process, for every PATCH run from
        here on."""
        self.receiver = Sink().__enter__()
        self.hooks = Subscriptions(self.tenants, self.receiver, self.dsn)
        self.hooks.create(server.url)
        # The statistics a service has after its first minute of webhooks: the seed's VACUUM ANALYZE found no events
        # and no deliveries, and until autovacuum's first ANALYZE of them (up to a minute or two in) the planner
        # guesses every selectivity, which is not the state the service runs in.
        self.wrk_patch(WARMUP_SECONDS, "statistics warm-up")
        execute(self.dsn, "ANALYZE ticket_event, webhook_delivery")

    @property
    def counter_field(self) -> str:
        return self.targets[0].field_ids["counter"]

    def wrk_patch(self, seconds: float, label: str) -> WrkResult:
        assert self.server is not None and self.workspace is not None
        # Fresh etags before every run: the previous run (or warm-up) changed them.
        tickets = patch_tickets(self.tenants, CONNECTIONS)
        etags = current_etags(self.dsn, [(self.tenants[i].spec.id, object_id) for i, object_id in tickets])
        data = self.workspace / "patch-data.lua"
        write_patch_data(data, self.tenants, tickets, etags, self.counter_field)
        execute(self.dsn, "CHECKPOINT")  # as before each pgbench update run: same starting point for both
        before = scalar(self.dsn, "SELECT count(*) FROM ticket_event")
        hooks = self.hooks if self.hooks is not None and self.hooks.active else None
        received = hooks.received() if hooks is not None else 0
        started = time.time()
        result = run_wrk(
            self.wrk,
            label,
            self.server.url,
            "patch.lua",
            connections=CONNECTIONS,
            threads=WRK_THREADS,
            seconds=seconds,
            script_args=[str(data), str(WRK_THREADS)],
            meter=self.meter,
        )
        result.extra["events"] = scalar(self.dsn, "SELECT count(*) FROM ticket_event") - before
        if hooks is not None:
            # Every event of the run delivered before the next run starts: no run inherits another's backlog.
            delivered = hooks.drain(received, started)
            result.extra["delivered"] = delivered.arrived
            if label.startswith(WEBHOOK_RUNS):
                hooks.results.runs.append(delivered)
        return result

    def wrk_get(self, seconds: float, label: str) -> WrkResult:
        assert self.server is not None and self.workspace is not None
        data = self.workspace / "get-data.lua"
        write_get_data(data, self.tenants, PER_TENANT, CUSTOMER_SHARE)
        return run_wrk(
            self.wrk,
            label,
            self.server.url,
            "get.lua",
            connections=CONNECTIONS,
            threads=WRK_THREADS,
            seconds=seconds,
            script_args=[str(data), str(WRK_THREADS)],
            meter=self.meter,
        )

    def wrk_trivial(self, seconds: float, label: str, connections: int = CONNECTIONS) -> WrkResult:
        assert self.server is not None
        return run_wrk(
            self.wrk,
            label,
            f"{self.server.url}/health/live",
            "live.lua",
            connections=connections,
            threads=min(WRK_THREADS, connections),
            seconds=seconds,
            meter=self.meter,
        )

    def trial_workers(self, choices: list[int]) -> None:
        say(f"worker trial: PATCH and GET for {TRIAL_SECONDS} s each with WORKERS in {choices}")
        for workers in choices:
            if self.server is None or self.server.workers != workers:
                self.start_server(workers)
            self.wrk_patch(1, "warm-up")
            patch = self.wrk_patch(TRIAL_SECONDS, f"trial {workers}w PATCH")
            get = self.wrk_get(TRIAL_SECONDS, f"trial {workers}w GET")
            score = math.sqrt(patch.rps * get.rps)
            self.results.trial[workers] = (patch.rps, get.rps, score)
            say(
                f"  WORKERS={workers}: PATCH {patch.rps:8.1f}/s p99 {patch.p99_ms:6.1f} ms | "
                f"GET {get.rps:8.1f}/s p99 {get.p99_ms:6.1f} ms | geometric mean {score:8.1f}"
            )
        self.results.workers = max(self.results.trial, key=lambda w: self.results.trial[w][2])
        say(f"  keeping WORKERS={self.results.workers} (highest geometric mean of PATCH/s and GET/s)")

    def measure(self) -> None:
        # One connection, one request at a time: the bare round trip of the trivial route.
        self.results.probe = probe = self.wrk_trivial(PROBE_SECONDS, "probe", connections=1)
        say(f"probe: /health/live over 1 connection: {probe.rps:.1f}/s, p50 {probe.p50_ms:.2f} ms")
        plans: list[tuple[str, Callable[[float, str], WrkResult], Measured]] = [
            ("PATCH", self.wrk_patch, self.results.patch),
            ("GET", self.wrk_get, self.results.get),
            ("trivial", self.wrk_trivial, self.results.trivial),
        ]
        for name, run, measured in plans:
            say(f"{name}: warm-up {WARMUP_SECONDS} s, then {REPEATS} x {SECONDS} s at {CONNECTIONS} connections")
            run(WARMUP_SECONDS, f"{name} warm-up")
            for attempt in range(1, REPEATS + 1):
                result = run(SECONDS, f"{name} #{attempt}")
                measured.runs.append(result)
                say("  " + describe(result))

    def hooks_cost(self) -> None:
        """PATCH with the webhook subscriptions off and on, in alternating runs, so that both see the same
        machine."""
        assert self.server is not None and self.hooks is not None
        say(f"webhooks: PATCH with the subscriptions off vs on, {REPEATS} x {SECONDS} s each, alternating")
        for attempt in range(1, REPEATS + 1):
            for active, measured in ((False, self.results.hooks_off), (True, self.results.hooks_on)):
                self.hooks.switch(self.server.url, active)
                result = self.wrk_patch(SECONDS, f"hooks {'on' if active else 'off'} #{attempt}")
                measured.runs.append(result)
                say("  " + describe(result))
        assert self.hooks.active

    def limits_cost(self) -> None:
        """PATCH through the server measured so far (rate limits on) against a second one with them off, in
        alternating runs, so that both see the same machine."""
        assert self.server is not None and self.workspace is not None and self.cluster is not None
        limited, limited_meter = self.server, self.meter
        say(f"rate limits: PATCH on vs off, {REPEATS} x {SECONDS} s each, alternating (a second server, limits off)")
        unlimited = start_server(self.workspace, self.dsn, self.results.workers, rate_limits=False)
        try:
            servers = {
                "on": (limited, limited_meter, self.results.limits_on),
                "off": (
                    unlimited,
                    CpuMeter(unlimited.process.pid, postmaster_pid(self.cluster.pgdata)),
                    self.results.limits_off,
                ),
            }
            self.server, self.meter = servers["off"][:2]
            self.wrk_patch(WARMUP_SECONDS, "PATCH off warm-up")
            for attempt in range(1, REPEATS + 1):
                for label, (server, meter, measured) in servers.items():
                    self.server, self.meter = server, meter
                    result = self.wrk_patch(SECONDS, f"limits {label} #{attempt}")
                    measured.runs.append(result)
                    say("  " + describe(result))
        finally:
            self.server, self.meter = limited, limited_meter
            unlimited.stop()

    def ceiling(self) -> None:
        assert self.cluster is not None and self.workspace is not None
        bench = Pgbench(self.pgbench, self.cluster.socket_dir, "ticketing", self.dsn, self.workspace, CONNECTIONS)
        tenant_ids = [t.spec.id for t in self.tenants]
        version = self.targets[0].type_version
        flags = f"{bench.clients} clients, -j {bench.threads}, -M prepared, -T {bench.seconds}"
        say(f"pgbench COMPARE_AND_SWAP ({flags}), {REPEATS} runs")
        for _ in range(REPEATS):
            run = bench.update(tenant_ids, self.counter_field, version)
            self.results.ceiling.append(run)
            say(
                f"  {run.tps:9.1f} tps  transactions {run.transactions}  failed {run.failed}  "
                f"rows updated (ticket_event rows written) {run.updated}"
            )
        say(f"pgbench GET SELECT ({flags}), {REPEATS} runs")
        for _ in range(REPEATS):
            run = bench.select(tenant_ids, PER_TENANT)
            self.results.select.append(run)
            say(f"  {run.tps:9.1f} tps  transactions {run.transactions}  failed {run.failed}")


def describe(result: WrkResult) -> str:
    extra = " ".join(f"{k}={v}" for k, v in result.extra.items())
    used = "/".join(f"{result.cpu.get(k, 0.0):.2f}" for k in CPU_COLUMNS)
    return (
        f"{result.label:<11} {result.rps:9.1f} ok/s  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
        f"requests {result.requests}  non-2xx {result.non2xx}  socket errors {result.socket_errors}"
        + (f"  {extra}" if extra else "")
        + f"  cores {'/'.join(CPU_COLUMNS)} {used}"
    )


def report(results: Results) -> tuple[str, bool]:
    patch, get, trivial = results.patch, results.get, results.trivial
    ceiling = statistics.median(r.tps for r in results.ceiling)
    select = statistics.median(r.tps for r in results.select)
    patch_ratio = patch.rps / ceiling if ceiling else 0.0
    get_ratio = get.rps / trivial.rps if trivial.rps else 0.0
    lines = [
        "",
        "=" * 110,
        "make bench report",
        "=" * 110,
        f"server: python -m app serve, WORKERS={results.workers} ("
        + ("best of the 1/2/3 trial" if results.trial else "BENCH_WORKERS")
        + f", {os.cpu_count()} cores), LOG_LEVEL={log_level()} (INFO, the default, writes the access log), DB pool "
        "2..16 per worker (default)",
        f"load: wrk {CONNECTIONS} connections / {WRK_THREADS} threads, {REPEATS} x {SECONDS} s after a "
        f"{WARMUP_SECONDS} s warm-up, medians; ok/s counts successes only (PATCH: 200s); p50/p99 from wrk's "
        "latency histogram",
        f"data: {2 * PER_TENANT} REQ tickets in 2 tenants (inline-JWKS realms, RS256 and ES256); PATCH: one ticket "
        "per connection, etag chained, one webhook subscription per tenant (every update delivered before the next "
        f"run); GET: a random ticket, 1 request in {CUSTOMER_SHARE} a customer's reading a ticket it created",
        *results.notes,
    ]
    if results.trial:
        lines.append(
            "worker trial: "
            + "; ".join(f"WORKERS={w}: PATCH {p:.0f}/s GET {g:.0f}/s" for w, (p, g, _) in results.trial.items())
        )
    if results.probe is not None:
        lines.append(
            f"probe: /health/live over 1 connection: {results.probe.rps:.1f}/s, p50 {results.probe.p50_ms:.2f} ms"
        )
    lines += ["", f"{'':<28}{'ok/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}   cores {'/'.join(CPU_COLUMNS)}"]
    for name, measured in (
        ("PATCH .../update", patch),
        ("GET .../ticket/{objectId}", get),
        ("GET /health/live", trivial),
    ):
        used = "/".join(f"{measured.cpu(k):.2f}" for k in CPU_COLUMNS)
        lines.append(
            f"{name:<28}{measured.rps:>10.1f}{measured.p50:>9.2f}{measured.p99:>9.2f}{measured.non2xx:>9}   {used}"
        )
    cas_runs = ", ".join(f"{r.tps:.0f}" for r in results.ceiling)
    cas_rows = ", ".join(f"{r.updated}/{r.transactions}" for r in results.ceiling)
    select_runs = ", ".join(f"{r.tps:.0f}" for r in results.select)
    lines += [
        f"{'pgbench COMPARE_AND_SWAP':<28}{ceiling:>10.1f} tps (runs {cas_runs}; rows updated/transactions {cas_rows})",
        f"{'pgbench GET SELECT':<28}{select:>10.1f} tps (runs {select_runs}; reference only)",
        f"PATCH: ETAG_MISMATCH {sum(r.extra.get('mismatch', 0) for r in patch.runs)}, other errors "
        f"{sum(r.extra.get('other', 0) for r in patch.runs)}; 200s per run {', '.join(str(r.ok) for r in patch.runs)}"
        f"; ticket_event rows per run {', '.join(str(r.extra.get('events')) for r in patch.runs)} (the same plus "
        f"up to {CONNECTIONS} committed while wrk stopped)",
        f"PATCH, rate limits on vs off (alternating runs; Redis's CPU is in 'other'): on {results.limits_on.rps:.1f} "
        f"ok/s p99 {results.limits_on.p99:.2f} ms, off {results.limits_off.rps:.1f} ok/s p99 "
        f"{results.limits_off.p99:.2f} ms",
        "",
    ]
    limits_ratio = results.limits_on.rps / results.limits_off.rps if results.limits_off.rps else 0.0
    checks = [
        (f"PATCH >= {PATCH_TARGET:.2f} x update ceiling", patch_ratio >= PATCH_TARGET, f"{patch_ratio:.3f}"),
        (f"GET >= {GET_TARGET:.2f} x trivial route", get_ratio >= GET_TARGET, f"{get_ratio:.3f}"),
        (f"PATCH p99 <= {TARGET_P99_MS:.0f} ms", patch.p99 <= TARGET_P99_MS, f"{patch.p99:.2f} ms"),
        (f"GET p99 <= {TARGET_P99_MS:.0f} ms", get.p99 <= TARGET_P99_MS, f"{get.p99:.2f} ms"),
        (
            f"PATCH limits on >= {1 - TARGET_LIMITS_COST:.2f} x off",
            limits_ratio >= 1 - TARGET_LIMITS_COST,
            f"{limits_ratio:.3f}",
        ),
    ]
    on, off = results.hooks_on, results.hooks_off
    cpu_per_event = {
        name: (on.cpu(name) / on.rps - off.cpu(name) / off.rps) if on.rps and off.rps else 0.0
        for name in ("server", "postgres", "other")
    }
    hook_lines, hook_checks, hook_fields = report_lines(results.webhooks, on.rps, off.rps, cpu_per_event)
    lines[-1:-1] = hook_lines
    checks += hook_checks
    lines += [f"{'PASS' if ok else 'FAIL'}  {name:<34} measured {value}" for name, ok, value in checks]
    all_ok = all(ok for _, ok, _ in checks)
    if not all_ok:
        lines += ["", *hints(results)]
    lines.append(
        f"patch_rps={patch.rps:.1f} patch_p50_ms={patch.p50:.2f} patch_p99_ms={patch.p99:.2f} "
        f"update_ceiling_tps={ceiling:.1f} patch_ratio={patch_ratio:.3f} get_rps={get.rps:.1f} "
        f"get_p50_ms={get.p50:.2f} get_p99_ms={get.p99:.2f} trivial_rps={trivial.rps:.1f} get_ratio={get_ratio:.3f} "
        f"patch_limits_on_rps={results.limits_on.rps:.1f} patch_limits_off_rps={results.limits_off.rps:.1f} "
        f"limits_ratio={limits_ratio:.3f} log_level={log_level()} workers={results.workers}" + f" {hook_fields}"
    )
    return "\n".join(lines), all_ok


def log_level() -> str:
    return BENCH_LOG_LEVEL or Settings().log_level


def hints(results: Results) -> list[str]:
    lines = ["Where the time goes (hints):"]
    probe = results.probe
    if probe is not None and probe.p50_ms >= 30 and probe.cpu.get("server", 1.0) < 0.5:
        lines += [
            f"  * /health/live over ONE connection takes {probe.p50_ms:.0f} ms per request while the server is nearly "
            f"idle ({probe.cpu.get('server', 0.0):.2f} cores): requests wait, they do not work. ~40 ms is most likely "
            "Linux's delayed ACK meeting Nagle's algorithm: the response goes out in two writes (headers, then body) "
            "on a socket without TCP_NODELAY. `python -m app serve` hands uvicorn a pre-bound socket with fd=, and "
            "uvicorn wraps it as socket.fromfd(fd, AF_UNIX, ...), so the event loop treats it as a Unix socket and "
            "never sets TCP_NODELAY on accepted connections. 32 connections / ~44 ms caps every route near 730/s.",
            "    Fix (app/__main__.py bind_socket, not made here): sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1) on the "
            "listening socket (Linux copies it to accepted sockets), or pass the socket with its real family.",
        ]
    cores = os.cpu_count() or 1
    for name, measured in (("PATCH", results.patch), ("GET", results.get), ("trivial", results.trivial)):
        if not measured.runs or not measured.rps:
            continue
        server, postgres, other = measured.cpu("server"), measured.cpu("postgres"), measured.cpu("other")
        busy = server + postgres + measured.cpu("wrk") + other
        if busy >= 0.9 * cores:
            state = "the machine's CPUs are saturated"
        elif server >= 0.8 * min(results.workers, cores):
            state = "the Python workers are CPU-bound"
        else:
            state = "not CPU-bound: requests spend their time waiting"
        lines.append(
            f"  * {name}: {state}; cores used: server {server:.2f}, PostgreSQL {postgres:.2f}, wrk "
            f"{measured.cpu('wrk'):.2f}, other processes {other:.2f} of {cores}; CPU per request: server "
            f"{1000 * server / measured.rps:.2f} ms, PostgreSQL {1000 * postgres / measured.rps:.2f} ms"
            + (" (other load on the machine disturbed this run)" if other > 0.3 else "")
        )
    lines += [
        "  * To profile a worker under load: python3 -m venv /tmp/pyspy && /tmp/pyspy/bin/pip install py-spy, then",
        "    /tmp/pyspy/bin/py-spy record -d 10 -o /tmp/profile.svg -p <pid of a worker: pgrep -P <serve pid>>.",
    ]
    return lines


def main() -> int:
    return run_to_report(Bench(), report)


if __name__ == "__main__":
    sys.exit(main())
