"""The machine side of the benchmark: tools, the temp folder, the cluster, the tenants and the server process."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Protocol, TypeVar

import httpx

from app.db.cluster import EmbeddedCluster
from tests.support import API, RealmSpec, SigningKey, TenantSpec, auth_headers, token, write_tenants

PROJECT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
TOKEN_TTL = 3 * 3600
# The server's log level; empty: the service's default, as deployed.
BENCH_LOG_LEVEL = os.environ.get("BENCH_LOG_LEVEL", "")


class BenchError(Exception):
    """The benchmark cannot run; the message says why."""


R = TypeVar("R")


class Runnable(Protocol[R]):
    def run(self) -> R: ...

    def cleanup(self) -> None: ...


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_to_report(bench: Runnable[R], report: Callable[[R], tuple[str, bool]]) -> int:
    """Run a bench, clean up whatever happens, and print its report: the exit code of `make bench*`. Ctrl-C and
    SIGTERM both end in the clean-up, even when started with SIGINT ignored (a background job)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    results: R | None = None
    code = 1
    try:
        results = bench.run()
        code = 0
    except KeyboardInterrupt:
        say("interrupted")
        code = 130
    except BenchError as exc:
        say(f"error: {exc}")
    finally:
        bench.cleanup()
    if results is not None:
        print(report(results)[0], flush=True)
    return code


def say(message: str) -> None:
    print(message, flush=True)


# --- tools ------------------------------------------------------------------------------------------------------


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    apt = shutil.which("apt-get")
    if apt is None:
        raise BenchError("wrk is not installed and apt-get is not available: install wrk")
    command = [apt, *args] if os.geteuid() == 0 else ["sudo", "-n", apt, *args]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def ensure_wrk() -> str:
    """wrk's path, installed with apt-get (after an `apt-get update` if the first attempt fails) when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    say("wrk not found: apt-get install -y wrk")
    result = _apt_get("install", "-y", "wrk")
    if result.returncode != 0:
        say("apt-get install failed; apt-get update, then again")
        _apt_get("update")
        result = _apt_get("install", "-y", "wrk")
    found = shutil.which("wrk")
    if result.returncode != 0 or found is None:
        raise BenchError(f"could not install wrk: {result.stderr.strip()[-500:]}")
    return found


def find_pgbench() -> str:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), key=lambda p: int(Path(p).parts[-3]))
    for candidate in [*reversed(candidates), shutil.which("pgbench")]:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BenchError("pgbench not found (/usr/lib/postgresql/15/bin/pgbench or /usr/bin/pgbench)")


# --- workspace, tenants, cluster --------------------------------------------------------------------------------


def make_workspace() -> Path:
    # Readable by `postgres`: the cluster runs as that user when we are root (as tests/conftest.py does).
    path = Path(tempfile.mkdtemp(prefix="ticketing-bench-"))
    path.chmod(0o755)
    return path


@dataclass
class BenchTenant:
    spec: TenantSpec
    bearer: str  # an agent's
    customer_bearer: str  # CUSTOMER_SUBJECT's, a customer-level caller: it reads only the tickets it created

    @property
    def headers(self) -> dict[str, str]:
        return auth_headers(self.spec, self.bearer)


# Rate limits no run reaches (a million requests a second per client and per ticket): with limits on, every request
# still makes its round trip to Redis, which is what the on/off comparison measures.
UNREACHED_RATE_LIMITS = {"plan": "bench", "plans": {"bench": 60_000_000}, "ticket_writes_per_minute": 60_000_000}


# The customer who created a share of the seeded tickets (see seed.SEED), and reads them in the GET load.
CUSTOMER_SUBJECT = "bench-customer"


def make_tenants(workspace: Path) -> list[BenchTenant]:
    """Two tenants, each with one realm whose key set is inline in the tenant file (RS256 and ES256)."""
    specs = [
        TenantSpec(
            id=uuid.uuid4(),
            slug="bench-north",
            realms=[RealmSpec("north-main", "https://idp.north.bench/realms/main", SigningKey("RS256"))],
            ticket_types=["request"],
            rate_limits=UNREACHED_RATE_LIMITS,
        ),
        TenantSpec(
            id=uuid.uuid4(),
            slug="bench-south",
            realms=[RealmSpec("south-main", "https://idp.south.bench/realms/main", SigningKey("ES256"))],
            ticket_types=["request"],
            rate_limits=UNREACHED_RATE_LIMITS,
        ),
    ]
    write_tenants(workspace / "tenants", specs)
    return [
        BenchTenant(
            spec,
            token(spec, roles=["agent"], subject=f"bench-{spec.slug}", ttl=TOKEN_TTL),
            token(spec, roles=list(spec.roles["customer"]), subject=CUSTOMER_SUBJECT, ttl=TOKEN_TTL),
        )
        for spec in specs
    ]


def start_cluster(workspace: Path, settings: str = "") -> EmbeddedCluster:
    """A durable cluster (throwaway=False: fsync, synchronous_commit and full_page_writes stay on, as in production),
    with `settings` (postgresql.conf lines) added to its configuration."""
    cluster = EmbeddedCluster(workspace / "postgres", throwaway=False)
    cluster.ensure_initialised()
    if settings:
        with (cluster.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(settings)
    cluster.start()
    return cluster


# --- the server -------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`python -m app serve` in its own session, so that stopping it reaches its worker processes too. With rate
    limits on, it counts in the private Redis server it starts in the workspace (as `make run` does)."""

    def __init__(self, workspace: Path, dsn: str, workers: int, *, rate_limits: bool = True) -> None:
        self.workers = workers
        self.rate_limits = rate_limits
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workspace / f"server-{workers}w-{self.port}.log"
        # The bench's own server settings win over the caller's: its private Redis, and the default log level.
        environment = {name: value for name, value in os.environ.items() if name not in ("REDIS_URL", "LOG_LEVEL")}
        env = {
            **environment,
            "RATE_LIMITS_ENABLED": "true" if rate_limits else "false",
            "DATABASE_URL": dsn,
            "TENANTS_DIR": str(workspace / "tenants"),
            "DATA_DIR": str(workspace / "data"),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WORKERS": str(workers),
            # As deployed: the service's default log level (INFO, with the access log), unless BENCH_LOG_LEVEL says
            # otherwise (to measure what logging costs).
            **({"LOG_LEVEL": BENCH_LOG_LEVEL} if BENCH_LOG_LEVEL else {}),
            # The webhook measurement delivers to a receiver on loopback.
            "WEBHOOK_ALLOW_LOOPBACK": "true",
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app", "serve"],
                cwd=PROJECT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(base_url=self.url, timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise BenchError(f"the server exited with {self.process.returncode}:\n{self.log_tail()}")
                try:
                    if http.get("/health/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise BenchError(f"the server did not become ready in {START_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            # The process group is the one this server was started in (start_new_session): its workers.
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def request_type(self, tenant: BenchTenant) -> dict[str, object]:
        """The tenant's REQ ticket type as the API lists it (id, version, fields with their UUIDs)."""
        response = httpx.get(f"{self.url}{API}/ticket-type", headers=tenant.headers, timeout=10)
        if response.status_code != 200:
            raise BenchError(f"GET ticket-type: {response.status_code} {response.text[:300]}")
        for ticket_type in response.json()["data"]:
            if ticket_type["prefix"] == "REQ":
                return dict(ticket_type)
        raise BenchError(f"tenant {tenant.spec.slug} has no REQ ticket type")


def start_server(workspace: Path, dsn: str, workers: int, *, rate_limits: bool = True) -> Server:
    server = Server(workspace, dsn, workers, rate_limits=rate_limits)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server
