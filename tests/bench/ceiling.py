"""pgbench against the same cluster: the ceiling of the PATCH's compare-and-swap, and the GET's SELECT.

The update script is the app's own COMPARE_AND_SWAP text, imported, with its positional parameters renamed to
pgbench variables ($1 :tenant, $2 :oid, $3 :etag, $4 :changes, $5 :actor, $6 :type_version, $7 :request_id,
$8 :support, $9 :new_etag); with `-M prepared` pgbench turns them back into $n parameters of one prepared
statement, as asyncpg does. Since the etag must match, each transaction is two statements, both autocommit like
the app's:

  1. a primary-key SELECT of the client's ticket (client k -> tenant k % 2, REQ-(k/2 + 1): one ticket per client,
     like one per wrk connection) that \\gset-s tenant, oid, current etag, a new etag and a fresh `changes` document;
  2. COMPARE_AND_SWAP with those values: one durable commit (ticket update + ticket_event insert).

So `update_ceiling_tps` is CAS transactions per second *including* one extra read-only round trip each, a slightly
conservative ceiling. The share of them that really updated is checked through the ticket_event rows they wrote.

The GET's SELECT is run for reference as: its column list and WHERE clause, with the tenant as a literal (one
script per tenant, picked at random) and the object id built from a random number in SQL, since pgbench
variables cannot hold text; one index lookup per transaction, like the API's.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from app.ticket.repository import _TICKET_COLUMNS, COMPARE_AND_SWAP
from tests.bench.environment import BenchError
from tests.bench.seed import execute, scalar

CAS_VARIABLES = {
    "1": "tenant",
    "2": "oid",
    "3": "etag",
    "4": "changes",
    "5": "actor",
    "6": "type_version",
    "7": "request_id",
    "8": "support",
    "9": "new_etag",
}
_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
_FAILED = re.compile(r"number of failed transactions: (\d+)")
_PROCESSED = re.compile(r"number of transactions actually processed: (\d+)")


def object_id_sql(number: str) -> str:
    return f"'REQ-' || lpad({number}::text, greatest(4, length({number}::text)), '0')"


def cas_statement() -> str:
    return re.sub(r"\$(\d+)", lambda m: ":" + CAS_VARIABLES[m.group(1)], COMPARE_AND_SWAP.strip()) + ";\n"


def cas_script(tenants: list[uuid.UUID], counter_field: str) -> str:
    cases = " ".join(f"WHEN {i} THEN '{tenant}'::uuid" for i, tenant in enumerate(tenants))
    return (
        f"\\set tenant_index :client_id % {len(tenants)}\n"
        f"\\set ticket_number :client_id / {len(tenants)} + 1\n"
        "\\set value random(1, 1000000000)\n"
        # The new etag comes with the read, as the app generates it before its write.
        "SELECT tenant_id AS tenant, object_id AS oid, etag, gen_random_uuid() AS new_etag,\n"
        f"       jsonb_build_object('{counter_field}', :value::bigint)::text AS changes\n"
        f"  FROM ticket WHERE tenant_id = CASE :tenant_index::int {cases} END\n"
        f"   AND object_id = {object_id_sql(':ticket_number')} \\gset\n" + cas_statement()
    )


def select_script(tenant: uuid.UUID, per_tenant: int) -> str:
    return (
        f"\\set n random(1, {per_tenant})\n"
        f"SELECT {_TICKET_COLUMNS} FROM ticket WHERE tenant_id = '{tenant}' AND object_id = {object_id_sql(':n')};\n"
    )


@dataclass(frozen=True)
class PgbenchRun:
    tps: float
    transactions: int
    failed: int
    updated: int | None  # ticket_event rows written during the run (update runs only)


@dataclass
class Pgbench:
    binary: str
    socket_dir: Path
    database: str
    dsn: str
    folder: Path
    clients: int = 32
    threads: int = 2
    seconds: int = 10

    def _run(self, scripts: list[Path], defines: dict[str, str], seconds: int) -> tuple[float, int, int]:
        command = [
            self.binary,
            "-h",
            str(self.socket_dir),
            "-p",
            "5432",
            "-U",
            "postgres",
            "-n",
            "-M",
            "prepared",
            "-c",
            str(self.clients),
            "-j",
            str(self.threads),
            "-T",
            str(seconds),
        ]
        for name, value in defines.items():
            command += ["-D", f"{name}={value}"]
        for script in scripts:
            command += ["-f", str(script)]
        command.append(self.database)
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
        tps = _TPS.search(done.stdout)
        processed = _PROCESSED.search(done.stdout)
        if done.returncode != 0 or tps is None or processed is None:
            raise BenchError(f"pgbench failed with {done.returncode}:\n{done.stdout}\n{done.stderr[-2000:]}")
        failed = _FAILED.search(done.stdout)
        return float(tps.group(1)), int(processed.group(1)), int(failed.group(1)) if failed else 0

    def update(self, tenants: list[uuid.UUID], counter_field: str, type_version: int) -> PgbenchRun:
        script = self.folder / "cas.sql"
        script.write_text(cas_script(tenants, counter_field))
        defines = {"actor": "pgbench", "type_version": str(type_version), "request_id": "pgbench", "support": "false"}
        execute(self.dsn, "CHECKPOINT")
        before = scalar(self.dsn, "SELECT count(*) FROM ticket_event")
        tps, transactions, failed = self._run([script], defines, self.seconds)
        after = scalar(self.dsn, "SELECT count(*) FROM ticket_event")
        return PgbenchRun(tps, transactions, failed, after - before)

    def select(self, tenants: list[uuid.UUID], per_tenant: int) -> PgbenchRun:
        scripts = []
        for index, tenant in enumerate(tenants):
            script = self.folder / f"select-{index}.sql"
            script.write_text(select_script(tenant, per_tenant))
            scripts.append(script)
        tps, transactions, failed = self._run(scripts, {}, self.seconds)
        return PgbenchRun(tps, transactions, failed, None)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0
