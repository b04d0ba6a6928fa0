"""Where a request's time goes: one server worker under the bench's PATCH, GET and trivial loads, its CPU per request
from /proc (a run without the profiler: on two cores, py-spy's own CPU would crowd the server), then split by what
`py-spy record --native` sees in a second run. The README's "Where a request's time goes" table comes from here.

    python3 -m venv /tmp/pyspy && /tmp/pyspy/bin/pip install py-spy
    .venv/bin/python -m tests.bench.request_profile          (PY_SPY=<path> if it is elsewhere)

Samples are attributed to the innermost frame that names a package (Python code, an extension module, or one of its C
files), so the interpreter's time counts for the Python code it runs; a sample whose innermost frame is in libc is
counted as "kernel and libc" (mostly system calls: socket writes and reads, epoll; also libc's memory copies and
allocation). A sample in the collector's functions is cyclic GC. A thread blocked on a lock (the access log's writer
waiting for records) is left out: py-spy counts it as running.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.bench.__main__ import Bench
from tests.bench.environment import ensure_wrk, find_pgbench, make_tenants, make_workspace, say, start_cluster
from tests.bench.load import WrkResult

# Where the bench's hint installs it (a throwaway venv of its own), unless PY_SPY or PATH says otherwise.
PY_SPY = os.environ.get("PY_SPY") or shutil.which("py-spy") or "/tmp/pyspy/bin/py-spy"  # noqa: S108
SECONDS = 20.0
WARMUP_SECONDS = 5.0
SAMPLES_PER_SECOND = 100
WAITS = ("pthread_cond_wait", "pthread_cond_timedwait", "PyThread_acquire_lock", "sem_clockwait", "sem_timedwait")
# An extension's C files, and the top-level Python packages, by what they are part of.
NATIVE = {
    "loop.c": "uvloop",
    "core.c": "uvloop",
    "stream.c": "uvloop",
    "_asynciomodule.c": "asyncio",
    "_core.c": "msgspec",
    "protocol.c": "asyncpg",
    "recordobj.c": "asyncpg",
    "parser.c": "uvicorn and httptools",
    "llhttp.c": "uvicorn and httptools",
    "http.c": "uvicorn and httptools",
    "api.c": "uvicorn and httptools",
}
PYTHON = {
    "app": "this service's code",
    "litestar": "litestar",
    "uvicorn": "uvicorn and httptools",
    "httptools": "uvicorn and httptools",
    "asyncpg": "asyncpg",
    "msgspec": "msgspec",
    "redis": "redis client",
    "asyncio": "asyncio",
    "logging": "logging",
    "jose": "JWT (python-jose)",
    "cryptography": "JWT (python-jose)",
    "jsonschema": "jsonschema",
    "uvloop": "uvloop",
    "aiohttp": "aiohttp (webhook deliveries)",
    "yarl": "aiohttp (webhook deliveries)",
    "multidict": "aiohttp (webhook deliveries)",
    "aiohappyeyeballs": "aiohttp (webhook deliveries)",
}


def waiting(stack: list[str]) -> bool:
    return any(wait in frame for frame in stack[-4:] for wait in WAITS)


GC_FUNCTIONS = ("gc_collect", "collect_with_callback", "collect_generations")


def category(stack: list[str]) -> str:
    places = [frame.rsplit(" (", 1)[-1].rstrip(")") for frame in stack]
    if any(frame.startswith(GC_FUNCTIONS) or "gcmodule.c" in frame for frame in stack):
        return "cyclic GC"
    if "libc.so" in places[-1]:
        return "kernel and libc"
    if places[-1] == "?":
        return "native code without symbols"
    for place in reversed(places):
        file = place.split(":")[0]
        top = file.split("/")[0]
        if file.endswith(".py"):
            if file.startswith("app/webhook/"):
                return "this service's webhook worker (dispatch, claims, signing)"
            return PYTHON.get(top, "standard library")
        if file.startswith("<frozen"):
            return "standard library"
        if "/" in file and top in PYTHON:  # an extension module: msgspec/_core....so, asyncpg/protocol/....so
            return PYTHON[top]
        if file.rsplit("/", 1)[-1] in NATIVE:
            return NATIVE[file.rsplit("/", 1)[-1]]
    return "interpreter"


def worker_pid(root: int) -> int:
    """The python process under the server (itself included) that has used the most CPU: the serving worker."""
    best, best_ticks = root, -1
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks = int(fields[11]) + int(fields[12])
        if b"python" in command and root in (int(entry), int(fields[1])) and ticks > best_ticks:
            best, best_ticks = int(entry), ticks
    return best


@dataclass
class Profile:
    name: str
    result: WrkResult
    shares: dict[str, float]

    def microseconds(self, part: str) -> float:
        return self.result.cpu[part] * self.result.duration_s / max(self.result.requests, 1) * 1e6


def profile(bench: Bench, name: str, run: Callable[[float, str], WrkResult]) -> Profile:
    assert bench.server is not None and bench.workspace is not None
    run(WARMUP_SECONDS, f"{name} warm-up")
    result = run(SECONDS, name)
    samples = bench.workspace / f"profile-{name}.txt"
    spy = subprocess.Popen(
        [
            PY_SPY,
            "record",
            "--native",
            *("--rate", str(SAMPLES_PER_SECOND), "--duration", str(int(SECONDS - 4)), "--format", "raw"),
            *("--output", str(samples), "--pid", str(worker_pid(bench.server.process.pid))),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        run(SECONDS, f"{name} profiled")
        _, complaint = spy.communicate(timeout=60)
    finally:
        if spy.poll() is None:
            spy.kill()
    if spy.returncode != 0 or not samples.exists():
        raise RuntimeError(f"py-spy failed ({spy.returncode}): {complaint.decode(errors='replace')[:500]}")
    counts: collections.Counter[str] = collections.Counter()
    for line in samples.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not waiting(frames):
            counts[category(frames)] += int(count)
    total = sum(counts.values()) or 1
    return Profile(name, result, {part: count / total for part, count in counts.most_common()})


def main() -> None:
    if not Path(PY_SPY).exists():
        raise SystemExit(
            f"py-spy not found at {PY_SPY}: python3 -m venv /tmp/pyspy && /tmp/pyspy/bin/pip install py-spy"
        )
    bench = Bench()
    bench.wrk = ensure_wrk()
    bench.pgbench = find_pgbench()
    bench.workspace = make_workspace()
    bench.tenants = make_tenants(bench.workspace)
    bench.cluster = start_cluster(bench.workspace)
    try:
        server = bench.start_server(1)
        bench.seed(server)
        bench.subscribe(server)  # as make bench: every PATCH is delivered as a webhook, by this worker
        profiles = [
            profile(bench, "PATCH", bench.wrk_patch),
            profile(bench, "GET", bench.wrk_get),
            profile(bench, "trivial", bench.wrk_trivial),
        ]
        for found in profiles:
            server = found.microseconds("server")
            say(
                f"\n{found.name}: {found.result.rps:.0f}/s, p99 {found.result.p99_ms:.1f} ms; CPU per request: server "
                f"{server:.0f} µs, PostgreSQL {found.microseconds('postgres'):.0f} µs"
            )
            for part, share in found.shares.items():
                say(f"  {part:40s} {share * 100:5.1f} %  {share * server:5.0f} µs")
    finally:
        bench.cleanup()


if __name__ == "__main__":
    main()
