"""`make bench-scale` (python -m tests.bench.scale): the ticket list, GET and PATCH at 10,000 and at 1,000,000 tickets.

Set up like `make bench` (tests/bench/__main__.py): a fresh temp folder, an embedded cluster with production
durability, the real server, wrk. One tenant gets 10,000 REQ tickets (tests/bench/seed.py, SCALE_SEED: most closed,
few urgent, titles from a small vocabulary); PATCH .../update and GET .../ticket/{objectId} are measured; the tenant
then grows to 1,000,000 tickets, PATCH and GET are measured again, and so are four list queries at per_page=20 with
8 concurrent clients: a state filter, a field filter, a q search and a field sort (each cycling through a few values).
Last, each list query's exact count is timed on its own, one client, so the report can say how much of a request
it is; and so is a count capped at CAPPED_COUNT matches, the fix the report proposes where the exact one is slow.

BENCH_WORKERS=<n> sets the server's workers (default 2). BENCH_SCALE_TICKETS=<n> grows the tenant to n tickets
instead of 1,000,000 and BENCH_SCALE_SECONDS=<s> measures s seconds per run instead of 10: a quick check of the run
itself, not a measurement. Ends with one key=value line.
"""

from __future__ import annotations

import datetime
import os
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg

from app.db.cluster import EmbeddedCluster
from app.ratelimit.server import PrivateRedis
from tests.bench.cpu import CpuMeter, postmaster_pid
from tests.bench.environment import (
    BENCH_LOG_LEVEL,
    BenchTenant,
    Server,
    ensure_wrk,
    make_tenants,
    make_workspace,
    run_to_report,
    say,
    start_cluster,
    start_server,
)
from tests.bench.load import WrkResult, lua_string, patch_tickets, run_wrk, write_get_data, write_patch_data
from tests.bench.seed import SeedTarget, current_etags, execute, run_sql, scalar, seed_scale
from tests.support import API

SMALL = 10_000
LARGE = int(os.environ.get("BENCH_SCALE_TICKETS", 1_000_000))
PATCH_GET_CONNECTIONS = 32  # as in `make bench`
LIST_CONNECTIONS = 8
WRK_THREADS = 2
SECONDS = float(os.environ.get("BENCH_SCALE_SECONDS", 10))
REPEATS = 3
WARMUP_SECONDS = 3
SQL_RUNS = 20
CAPPED_COUNT = 1_000
TARGET_LIST_P99_MS = 50.0
TARGET_RATIO = 0.90  # PATCH and GET at 1M within 10 % of 10k
DEFAULT_WORKERS = 2


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


@dataclass
class ListQuery:
    """One kind of list query: its query strings (one is picked per request) and the condition the list's SQL adds
    for it to the tenant's undeleted tickets (what its exact count counts)."""

    name: str
    queries: list[dict[str, str]]
    condition: str
    arguments: Callable[[int], list[Any]]  # the condition's arguments for query number i ($1: the tenant)
    measured: Measured = field(default_factory=Measured)
    count_ms: float = 0.0
    capped_ms: float = 0.0
    matches: list[int] = field(default_factory=list)

    @property
    def count_sql(self) -> str:
        return f"SELECT count(*) FROM ticket WHERE tenant_id = $1 AND deleted_at IS NULL{self.condition}"

    @property
    def capped_sql(self) -> str:
        """The count a capped total would run: it stops at CAPPED_COUNT + 1 matches."""
        return (
            "SELECT count(*) FROM (SELECT 1 FROM ticket WHERE tenant_id = $1 AND deleted_at IS NULL"
            f"{self.condition} LIMIT {CAPPED_COUNT + 1}) AS capped"
        )


@dataclass
class Results:
    workers: int = 0
    seed_seconds: dict[int, float] = field(default_factory=dict)
    patch: dict[int, Measured] = field(default_factory=dict)
    get: dict[int, Measured] = field(default_factory=dict)
    lists: list[ListQuery] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class ScaleBench:
    def __init__(self) -> None:
        self.workspace: Path | None = None
        self.cluster: EmbeddedCluster | None = None
        self.server: Server | None = None
        self.meter: CpuMeter | None = None
        self.tenant: BenchTenant | None = None
        self.target: SeedTarget | None = None
        self.results = Results()
        self.wrk = ""
        # Every ticket's creation time is this plus 90 s per ticket number (the newest about now).
        self.base = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=90 * LARGE)

    @property
    def dsn(self) -> str:
        assert self.cluster is not None
        return self.cluster.dsn()

    def cleanup(self) -> None:
        say("cleaning up: server, cluster, temp folder")
        try:
            if self.server is not None:
                self.server.stop()
        finally:
            try:
                if self.cluster is not None:
                    self.cluster.stop()
                if self.workspace is not None:  # a server killed on timeout leaves its private Redis running
                    PrivateRedis(self.workspace / "data" / "redis").stop()
            finally:
                if self.workspace is not None:
                    shutil.rmtree(self.workspace, ignore_errors=True)

    def run(self) -> Results:
        started = time.monotonic()
        self.wrk = ensure_wrk()
        self.workspace = make_workspace()
        tenants = make_tenants(self.workspace)
        self.tenant = tenants[0]  # the other tenant stays empty
        self.cluster = start_cluster(self.workspace)
        version = scalar(self.dsn, "SHOW server_version")
        settings = scalar(
            self.dsn,
            "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings "
            "WHERE name IN ('shared_buffers', 'work_mem', 'jit', 'max_parallel_workers_per_gather')",
        )
        self.results.notes.append(f"cluster: PostgreSQL {version}, production durability, {settings}")
        workers = int(os.environ.get("BENCH_WORKERS", DEFAULT_WORKERS))
        self.results.workers = workers
        self.server = start_server(self.workspace, self.dsn, workers)
        self.meter = CpuMeter(self.server.process.pid, postmaster_pid(self.cluster.pgdata))
        request_type = self.server.request_type(self.tenant)
        fields = {f["key"]: f["id"] for f in request_type["fields"]}  # type: ignore[attr-defined]
        self.target = SeedTarget(
            self.tenant.spec.id,
            uuid.UUID(str(request_type["id"])),
            int(str(request_type["version"])),
            fields,
            self.tenant.spec.realms[0].name,
        )
        say(f"workspace {self.workspace}; server WORKERS={workers} on {self.server.url}")

        self.grow(1, SMALL, rebuild=False)
        self.measure_patch_and_get(SMALL)
        self.grow(SMALL + 1, LARGE, rebuild=True)
        self.measure_patch_and_get(LARGE)
        self.measure_lists()
        self.server.stop()
        self.server = None
        self.time_statements()
        say(f"done in {time.monotonic() - started:.0f} s")
        return self.results

    def grow(self, first: int, last: int, *, rebuild: bool) -> None:
        assert self.target is not None
        began = time.monotonic()
        say(f"seeding REQ-{first:04d}..REQ-{last:04d}" + (" (indexes dropped, then built again)" if rebuild else ""))
        seed_scale(self.dsn, self.target, first, last, self.base, rebuild)
        self.results.seed_seconds[last] = seconds = time.monotonic() - began
        say(f"  {scalar(self.dsn, 'SELECT count(*) FROM ticket')} tickets, seeded in {seconds:.0f} s")

    def measure_patch_and_get(self, size: int) -> None:
        assert self.server is not None and self.workspace is not None and self.tenant is not None
        patch, get = Measured(), Measured()
        self.results.patch[size], self.results.get[size] = patch, get
        tenants = [self.tenant]
        counter = self.target.field_ids["counter"] if self.target else ""

        def wrk_patch(seconds: float, label: str) -> WrkResult:
            assert self.server is not None and self.workspace is not None
            tickets = patch_tickets(tenants, PATCH_GET_CONNECTIONS)
            etags = current_etags(self.dsn, [(tenants[i].spec.id, object_id) for i, object_id in tickets])
            data = self.workspace / "patch-data.lua"
            write_patch_data(data, tenants, tickets, etags, counter)
            execute(self.dsn, "CHECKPOINT")
            return self.wrk_run(label, "patch.lua", PATCH_GET_CONNECTIONS, seconds, [str(data), str(WRK_THREADS)])

        def wrk_get(seconds: float, label: str) -> WrkResult:
            assert self.workspace is not None
            data = self.workspace / "get-data.lua"
            write_get_data(data, tenants, size, customer_share=0)  # agents only: the scale is what varies
            return self.wrk_run(label, "get.lua", PATCH_GET_CONNECTIONS, seconds, [str(data), str(WRK_THREADS)])

        for name, run, measured in (("PATCH", wrk_patch, patch), ("GET", wrk_get, get)):
            say(f"{name} at {size:,} tickets: warm-up {WARMUP_SECONDS} s, then {REPEATS} x {SECONDS:g} s")
            run(WARMUP_SECONDS, f"{name} warm-up")
            for attempt in range(1, REPEATS + 1):
                result = run(SECONDS, f"{name} #{attempt}")
                measured.runs.append(result)
                say("  " + describe(result))

    def wrk_run(self, label: str, script: str, connections: int, seconds: float, args: list[str]) -> WrkResult:
        assert self.server is not None
        return run_wrk(
            self.wrk,
            label,
            self.server.url,
            script,
            connections=connections,
            threads=WRK_THREADS,
            seconds=seconds,
            script_args=args,
            meter=self.meter,
        )

    def list_queries(self) -> list[ListQuery]:
        assert self.target is not None and self.tenant is not None
        fields = self.target.field_ids
        tenant = self.tenant.spec.id
        open_states = ["open", "new"]
        priorities = ["high", "urgent"]
        searches = ["router offline", "printer jammed", "door stuck", "projector flickering"]
        return [
            ListQuery(
                "state filter",
                [{"state": state} for state in open_states],
                " AND state_id = ANY(ARRAY(SELECT id FROM ticket_state WHERE tenant_id = $1 AND name = $2))",
                lambda i: [tenant, open_states[i]],
            ),
            ListQuery(
                "field filter",
                [{f"data.{fields['priority']}": priority} for priority in priorities],
                " AND data @> jsonb_build_object($2::text, $3::text)",
                lambda i: [tenant, fields["priority"], priorities[i]],
            ),
            ListQuery(
                "q search",
                [{"q": text} for text in searches],
                " AND search @@ websearch_to_tsquery('simple', $2)",
                lambda i: [tenant, searches[i]],
            ),
            ListQuery(
                "field sort",
                [{"sort": f"data.{fields['priority']}", "order": order} for order in ("desc", "asc")],
                "",
                lambda i: [tenant],
            ),
        ]

    def measure_lists(self) -> None:
        assert self.workspace is not None and self.tenant is not None
        auth = self.tenant
        for query in self.list_queries():
            paths = [f"{API}/ticket?" + urlencode({**params, "per_page": "20"}) for params in query.queries]
            data = self.workspace / "list-data.lua"
            data.write_text(
                "bench_auth = {\n"
                f"  {{authorization = {lua_string(f'Bearer {auth.bearer}')}, tenant = {lua_string(str(auth.spec.id))},"
                f" realm = {lua_string(auth.spec.realms[0].name)}}},\n}}\n"
                "bench_paths = {\n" + "".join(f"  {lua_string(path)},\n" for path in paths) + "}\n"
            )
            plan = f"warm-up {WARMUP_SECONDS} s, then {REPEATS} x {SECONDS:g} s, {LIST_CONNECTIONS} clients"
            say(f"list, {query.name}: {plan}")
            self.wrk_run(f"{query.name} warm-up", "list.lua", LIST_CONNECTIONS, WARMUP_SECONDS, [str(data)])
            for attempt in range(1, REPEATS + 1):
                result = self.wrk_run(f"{query.name} #{attempt}", "list.lua", LIST_CONNECTIONS, SECONDS, [str(data)])
                query.measured.runs.append(result)
                say("  " + describe(result))
            self.results.lists.append(query)

    def time_statements(self) -> None:
        """Each list query's exact count, and the count a total capped at CAPPED_COUNT would run, one client at a
        time, with the server stopped: what the exact total costs of each request."""
        say(f"the list's counts alone: {SQL_RUNS} runs each, one client")

        async def work(conn: asyncpg.Connection) -> None:
            for query in self.results.lists:
                exact: list[float] = []
                capped: list[float] = []
                for run in range(SQL_RUNS):
                    arguments = query.arguments(run % len(query.queries))
                    began = time.perf_counter()
                    matches = await conn.fetchval(query.count_sql, *arguments)
                    exact.append(1000 * (time.perf_counter() - began))
                    began = time.perf_counter()
                    await conn.fetchval(query.capped_sql, *arguments)
                    capped.append(1000 * (time.perf_counter() - began))
                    if run < len(query.queries):
                        query.matches.append(matches)
                query.count_ms, query.capped_ms = statistics.median(exact), statistics.median(capped)
                say(
                    f"  {query.name}: exact count {query.count_ms:.1f} ms (matches {query.matches}), capped at "
                    f"{CAPPED_COUNT:,}: {query.capped_ms:.1f} ms"
                )

        run_sql(self.dsn, work)


def describe(result: WrkResult) -> str:
    extra = "".join(f"  {k}={v}" for k, v in result.extra.items())
    return (
        f"{result.label:<20} {result.rps:9.1f} ok/s  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
        f"requests {result.requests}  non-2xx {result.non2xx}  socket errors {result.socket_errors}{extra}  "
        f"cores server/postgres/wrk/other "
        + "/".join(f"{result.cpu.get(k, 0.0):.2f}" for k in ("server", "postgres", "wrk", "other"))
    )


def report(results: Results) -> tuple[str, bool]:
    lines = [
        "",
        "=" * 110,
        "make bench-scale report",
        "=" * 110,
        f"server: python -m app serve, WORKERS={results.workers} ({os.cpu_count()} cores), "
        f"LOG_LEVEL={BENCH_LOG_LEVEL or 'INFO (the default)'}",
        f"data: one tenant, REQ tickets seeded in SQL (tests/bench/seed.py SCALE_SEED): {SMALL:,} in "
        f"{results.seed_seconds.get(SMALL, 0):.0f} s, then up to {LARGE:,} in "
        f"{results.seed_seconds.get(LARGE, 0):.0f} s",
        f"load: wrk, {REPEATS} x {SECONDS:g} s after a {WARMUP_SECONDS} s warm-up, medians; PATCH and GET at "
        f"{PATCH_GET_CONNECTIONS} connections (as make bench), the list at {LIST_CONNECTIONS} connections, per_page=20",
        *results.notes,
        "",
        f"{'':<34}{'ok/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}",
    ]
    for size in (SMALL, LARGE):
        for name, measured in (("PATCH .../update", results.patch[size]), ("GET .../ticket/{id}", results.get[size])):
            label = f"{name} at {size:,}"
            lines.append(
                f"{label:<34}{measured.rps:>10.1f}{measured.p50:>9.2f}{measured.p99:>9.2f}{measured.non2xx:>9}"
            )
    lines.append("")
    lines.append(
        f"{f'list at {LARGE:,}, per_page=20':<34}{'ok/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}"
        f"   exact count alone / capped at {CAPPED_COUNT:,} (1 client), matches"
    )
    for query in results.lists:
        m = query.measured
        lines.append(
            f"{query.name:<34}{m.rps:>10.1f}{m.p50:>9.2f}{m.p99:>9.2f}{m.non2xx:>9}   "
            f"{query.count_ms:.1f} ms / {query.capped_ms:.1f} ms, {', '.join(f'{n:,}' for n in query.matches)}"
        )
        lines.append(f"{'':<36}" + "; ".join(f"{urlencode(q)}" for q in query.queries))
    patch_ratio = results.patch[LARGE].rps / results.patch[SMALL].rps if results.patch[SMALL].rps else 0.0
    get_ratio = results.get[LARGE].rps / results.get[SMALL].rps if results.get[SMALL].rps else 0.0
    checks = [
        (f"PATCH at {LARGE:,} >= {TARGET_RATIO:.2f} x at {SMALL:,}", patch_ratio >= TARGET_RATIO, f"{patch_ratio:.3f}"),
        (f"GET at {LARGE:,} >= {TARGET_RATIO:.2f} x at {SMALL:,}", get_ratio >= TARGET_RATIO, f"{get_ratio:.3f}"),
        *(
            (
                f"list {q.name} p99 <= {TARGET_LIST_P99_MS:.0f} ms",
                q.measured.p99 <= TARGET_LIST_P99_MS and q.measured.non2xx == 0,
                f"{q.measured.p99:.2f} ms",
            )
            for q in results.lists
        ),
    ]
    lines.append("")
    lines += [f"{'PASS' if ok else 'FAIL'}  {name:<40} measured {value}" for name, ok, value in checks]
    lines.append(
        f"patch_ratio={patch_ratio:.3f} get_ratio={get_ratio:.3f} "
        + " ".join(f"{q.name.replace(' ', '_')}_p99_ms={q.measured.p99:.2f}" for q in results.lists)
    )
    return "\n".join(lines), all(ok for _, ok, _ in checks)


def main() -> int:
    return run_to_report(ScaleBench(), report)


if __name__ == "__main__":
    sys.exit(main())
