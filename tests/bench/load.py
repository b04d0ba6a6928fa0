"""wrk runs: the Lua data files written before each run, the command, and the parsed result."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.cpu import CpuMeter
from tests.bench.environment import BenchError, BenchTenant
from tests.support import API

LUA_DIR = Path(__file__).resolve().parent / "lua"
CATALOG_QUERY = "type=template&module=ticketing"
_BENCH_LINE = re.compile(r"^BENCH (.*)$", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)")


@dataclass
class WrkResult:
    label: str
    requests: int
    duration_s: float
    ok: int
    non2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    extra: dict[str, int]
    output: str
    cpu: dict[str, float] = field(default_factory=dict)  # cores used during the run, see cpu.CpuMeter

    @property
    def rps(self) -> float:
        """Successful answers per second (200 for PATCH; non-error for the GETs)."""
        return self.ok / self.duration_s if self.duration_s else 0.0


def lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string of ASCII text is a valid Lua string literal


def _auth_table(tenants: list[BenchTenant], *, customers: bool = False) -> str:
    rows = [
        f"  {{authorization = {lua_string(f'Bearer {t.customer_bearer if customers else t.bearer}')}, "
        f"tenant = {lua_string(str(t.spec.id))}, realm = {lua_string(t.spec.realms[0].name)}}},"
        for t in tenants
    ]
    name = "bench_customer_auth" if customers else "bench_auth"
    return f"{name} = {{\n" + "\n".join(rows) + "\n}\n"


def patch_tickets(tenants: list[BenchTenant], connections: int) -> list[tuple[int, str]]:
    """One ticket per connection, alternating tenants: (tenant index, object id)."""
    return [(i % len(tenants), f"REQ-{i // len(tenants) + 1:04d}") for i in range(connections)]


def write_patch_data(
    path: Path,
    tenants: list[BenchTenant],
    tickets: list[tuple[int, str]],
    etags: dict[tuple[uuid.UUID, str], str],
    counter_field: str,
) -> None:
    rows = []
    for tenant_index, object_id in tickets:
        etag = etags.get((tenants[tenant_index].spec.id, object_id))
        if etag is None:
            raise BenchError(f"ticket {object_id} of {tenants[tenant_index].spec.slug} not found")
        patch = f"{API}/ticket/{object_id}/update?{CATALOG_QUERY}"
        get = f"{API}/ticket/{object_id}"
        rows.append(
            f"  {{patch = {lua_string(patch)}, get = {lua_string(get)}, auth = {tenant_index + 1}, "
            f"etag = {lua_string(etag)}}},"
        )
    path.write_text(
        "bench_tickets = {\n"
        + "\n".join(rows)
        + "\n}\n"
        + _auth_table(tenants)
        + f"bench_field = {lua_string(counter_field)}\n"
    )


def write_get_data(path: Path, tenants: list[BenchTenant], per_tenant: int, customer_share: int) -> None:
    if customer_share > per_tenant:
        raise BenchError(f"{per_tenant} tickets per tenant: none of them is every {customer_share}th, the customer's")
    path.write_text(
        _auth_table(tenants)
        + _auth_table(tenants, customers=True)
        + f"bench_count = {per_tenant}\nbench_customer_share = {customer_share}\nbench_prefix = {lua_string('REQ')}\n"
    )


def run_wrk(
    wrk: str,
    label: str,
    url: str,
    script: str,
    *,
    connections: int,
    threads: int,
    seconds: float,
    script_args: list[str] | None = None,
    meter: CpuMeter | None = None,
) -> WrkResult:
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA_DIR / script),
        url,
    ]
    if script_args:
        command += ["--", *script_args]
    if meter is not None:
        meter.start()
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    output = done.stdout
    match = _BENCH_LINE.search(output)
    if done.returncode != 0 or match is None:
        raise BenchError(f"wrk ({label}) failed with {done.returncode}:\n{output}\n{done.stderr}")
    if done.stderr.strip():
        print(done.stderr.strip(), flush=True)
    values = {key: int(value) for key, value in (item.split("=", 1) for item in match.group(1).split())}
    non2xx_printed = _NON_2XX.search(output)
    non2xx = int(non2xx_printed.group(1)) if non2xx_printed else values["non2xx"]
    duration_s = values["duration_us"] / 1e6
    cpu = meter.stop(duration_s) if meter is not None else {}
    core = {"requests", "duration_us", "p50_us", "p99_us", "non2xx", "ok", "connect", "read", "write", "timeout"}
    return WrkResult(
        label=label,
        requests=values["requests"],
        duration_s=duration_s,
        ok=values["ok"],
        non2xx=non2xx,
        socket_errors=values["connect"] + values["read"] + values["write"] + values["timeout"],
        p50_ms=values["p50_us"] / 1000,
        p99_ms=values["p99_us"] / 1000,
        extra={k: v for k, v in values.items() if k not in core},
        output=output,
        cpu=cpu,
    )
