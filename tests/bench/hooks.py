"""`make bench-hooks` (python -m tests.bench.hooks): only what webhooks cost, in about two minutes, for work on the
delivery path; `make bench` stays the measurement of record.

The same set-up as `make bench` (two workers unless BENCH_WORKERS says otherwise), then its PATCH runs with the
subscriptions off and on in alternating pairs, and its webhook report: the ratio, the lag and the CPU per delivered
event by process. Then where PostgreSQL's share goes: pg_stat_statements (loaded for this run only, nested
statements such as foreign-key checks included) over each run with the subscriptions on, the last run's statements
by total time, per delivered event. Times are wall-clock inside PostgreSQL, so on a saturated machine they include
waiting for a core: compare them with each other, not with the CPU figures.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import asyncpg

from tests.bench.__main__ import WARMUP_SECONDS, Bench, Results
from tests.bench.environment import ensure_wrk, make_tenants, make_workspace, run_to_report, start_cluster
from tests.bench.load import WrkResult
from tests.bench.seed import execute, run_sql
from tests.bench.webhooks import report_lines

STATEMENTS_SHOWN = 12
STATEMENT_STATS = """
SELECT calls, total_exec_time, rows, wal_bytes, regexp_replace(query, '\\s+', ' ', 'g') AS query
  FROM pg_stat_statements
 WHERE query !~* 'pg_stat_statements'
 ORDER BY total_exec_time DESC
 LIMIT $1
"""


@dataclass
class Statement:
    calls: int
    total_ms: float
    rows: int
    wal_bytes: int
    query: str


@dataclass
class HookResults(Results):
    # The statements of the last run with the subscriptions on, and how many events that run delivered.
    statements: list[Statement] = field(default_factory=list)
    events: int = 0


class HooksBench(Bench):
    def __init__(self) -> None:
        super().__init__()
        self.results = HookResults()

    def run(self) -> HookResults:
        self.wrk = ensure_wrk()
        self.workspace = make_workspace()
        self.tenants = make_tenants(self.workspace)
        settings = "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = all\n"
        self.cluster = start_cluster(self.workspace, settings)
        execute(self.dsn, "CREATE EXTENSION pg_stat_statements")
        server = self.start_server(int(os.environ.get("BENCH_WORKERS", "2")))
        self.seed(server)
        self.subscribe(server)
        self.wrk_patch(WARMUP_SECONDS, "warm-up")
        self.hooks_cost()
        assert self.hooks is not None
        self.results.webhooks = self.hooks.results
        return self.results

    def wrk_patch(self, seconds: float, label: str) -> WrkResult:
        """As `make bench`'s, with PostgreSQL's statements noted over each run with the subscriptions on."""
        on = self.hooks is not None and self.hooks.active and label.startswith("hooks on")
        if on:
            execute(self.dsn, "SELECT pg_stat_statements_reset()")
        result = super().wrk_patch(seconds, label)
        if on:
            assert isinstance(self.results, HookResults)
            self.results.statements = statements(self.dsn)
            self.results.events = int(result.extra.get("delivered", 0))
        return result


def statements(dsn: str) -> list[Statement]:
    async def work(conn: asyncpg.Connection) -> list[Statement]:
        rows = await conn.fetch(STATEMENT_STATS, STATEMENTS_SHOWN)
        return [
            Statement(row["calls"], row["total_exec_time"], row["rows"], int(row["wal_bytes"]), row["query"])
            for row in rows
        ]

    return run_sql(dsn, work)


def report(results: HookResults) -> tuple[str, bool]:
    on, off = results.hooks_on, results.hooks_off
    cpu_per_event = {
        name: (on.cpu(name) / on.rps - off.cpu(name) / off.rps) if on.rps and off.rps else 0.0
        for name in ("server", "postgres", "other")
    }
    lines, checks, fields = report_lines(results.webhooks, on.rps, off.rps, cpu_per_event)
    events = max(results.events, 1)
    lines += [
        "",
        f"PostgreSQL's statements over the last run with the subscriptions on ({results.events} events delivered), "
        "by total time:",
        "    calls   total ms  ms/event     rows  WAL B/call  statement",
    ]
    lines += [
        f"{s.calls:9d} {s.total_ms:10.1f} {s.total_ms / events:9.3f} {s.rows:8d} {s.wal_bytes / max(s.calls, 1):11.0f}"
        f"  {s.query[:100]}"
        for s in results.statements
    ]
    lines += [f"{'PASS' if ok else 'FAIL'}  {name:<34} measured {value}" for name, ok, value in checks]
    lines.append(fields)
    return "\n".join(lines), all(ok for _, ok, _ in checks)


def main() -> int:
    return run_to_report(HooksBench(), report)


if __name__ == "__main__":
    sys.exit(main())
