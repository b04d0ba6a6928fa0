"""The real command line, end to end: `python -m app ...` as subprocesses, as an operator runs it.

Covers `serve` against the session database (health probes, clean SIGINT shutdown, the request-header timeout
reaching worker processes), start-up failures that must end in one `error: ...` line and no traceback, `token`
(also through `make -s token`), and the embedded cluster's lifecycle when no DATABASE_URL is set (`tenants sync`
twice, then `serve`, each stopping the cluster it started; after a kill -9 the next `serve` adopts the orphaned
cluster and stops it; a command run beside `serve` leaves it running).
"""

from __future__ import annotations

import base64
import contextlib
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.ratelimit.server import PrivateRedis
from app.tenancy.devkeys import public_jwk
from tests.support import Serve, TenantSpec, cli_env, free_port, json_log

PROJECT = Path(__file__).resolve().parents[2]
SHIPPED_TENANTS = PROJECT / "tenants"
ACME = tomllib.loads((SHIPPED_TENANTS / "acme.toml").read_text())
ACME_REALM = ACME["realms"][0]

CLI_TIMEOUT = 60.0  # one-shot commands; the first `tenants sync` also runs initdb
START_TIMEOUT = 30.0  # until /health/live answers
STOP_TIMEOUT = 20.0  # after SIGINT
UNREACHABLE_DATABASE = "postgresql://postgres@/nowhere?host=/nonexistent-dir"
JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


# --- helpers ---------------------------------------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str], timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout
    )


def new_dir(parent: Path, prefix: str) -> Path:
    """A fresh 0755 folder: the embedded cluster runs as `postgres` and must be able to traverse it."""
    path = parent / f"{prefix}-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    path.chmod(0o755)
    return path


def b64url_json(segment: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return decoded


def only_token(stdout: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """stdout must be exactly one line holding a three-segment JWT; returns its header and payload, unverified."""
    assert stdout.endswith("\n") and stdout.count("\n") == 1, f"expected exactly one line, got {stdout!r}"
    token = stdout.rstrip("\n")
    assert JWT_SHAPE.match(token), f"not a three-segment JWT: {token!r}"
    header, payload, _ = token.split(".")
    return b64url_json(header), b64url_json(payload)


def assert_single_error(result: subprocess.CompletedProcess[str], pattern: str) -> str:
    """A start-up failure: exit code 1, nothing on stdout, one `error:` line on stderr and no traceback."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {lines!r}"
    assert re.search(pattern, lines[0]), f"{lines[0]!r} does not match {pattern!r}"
    return lines[0]


def pg_ctl(*args: str, timeout: float = 30) -> int:
    """Run pg_ctl (as `postgres` when we are root, as the cluster does) and return its exit code."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parents[1].name))
    if os.environ.get("PG_BINDIR"):
        candidates.append(str(Path(os.environ["PG_BINDIR"]) / "pg_ctl"))
    binary = next((c for c in reversed(candidates) if Path(c).exists()), None) or shutil.which("pg_ctl")
    assert binary, "pg_ctl not found"
    as_postgres = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*as_postgres, binary, *args], capture_output=True, timeout=timeout, check=False).returncode


def pg_ctl_status(pgdata: Path) -> int:
    """0 running, 3 not running, 4 no data directory."""
    return pg_ctl("status", "-D", str(pgdata))


def stop_cluster_if_running(pgdata: Path) -> None:
    """Safety net for a failed test: never leave a postmaster behind."""
    if (pgdata / "postmaster.pid").exists():
        pg_ctl("stop", "-m", "immediate", "-w", "-D", str(pgdata), timeout=60)


# --- 1. serve against the session database ---------------------------------------------------------------------


def test_serve_answers_health_probes_and_stops_on_sigint(
    tenants: list[TenantSpec], database_url: str, workspace: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = cli_env(
        DATABASE_URL=database_url,
        PORT=str(port),
        TENANTS_DIR=str(workspace / "tenants"),
        DATA_DIR=str(workspace / "data"),
    )
    with Serve(env, port, tmp_path) as server:
        live = httpx.get(f"{server.url}/health/live", headers={"x-request-id": "probe-live"}, timeout=5)
        ready = httpx.get(f"{server.url}/health/ready", headers={"x-request-id": "probe-ready"}, timeout=5)
        assert (live.status_code, live.json()) == (200, {"status": "ok"})
        assert (ready.status_code, ready.json()) == (200, {"status": "ok", "database": "ok"})
        assert live.headers["content-type"] == "application/json"

        code = server.stop()

    assert code == 0, server.stderr
    assert server.stdout == ""
    records = json_log(server.stderr)
    serving = [r for r in records if r["msg"] == "serving"]
    assert len(serving) == 1, records
    assert serving[0]["url"] == f"http://127.0.0.1:{port}"
    assert serving[0]["database"] == "DATABASE_URL"
    messages = [r["msg"] for r in records]
    assert "Application shutdown complete." in messages, messages
    assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL")], records
    # The access log, written by the log thread (off the request path), each line with its own request's id, and
    # drained before the process exits.
    access = [r for r in records if r["logger"] == "app.access" and r["request_id"].startswith("probe-")]
    assert [(r["request_id"], r["method"], r["path"], r["status"]) for r in access] == [
        ("probe-live", "GET", "/health/live", 200),
        ("probe-ready", "GET", "/health/ready", 200),
    ]
    assert all(isinstance(r["duration_ms"], float) and r["duration_ms"] > 0 for r in access), access
    assert serving[0]["request_id"] == "-"


def test_serve_workers_close_a_connection_that_sends_no_request_in_time(
    tenants: list[TenantSpec], database_url: str, workspace: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = cli_env(
        DATABASE_URL=database_url,
        PORT=str(port),
        TENANTS_DIR=str(workspace / "tenants"),
        DATA_DIR=str(workspace / "data"),
        WORKERS="2",
        REQUEST_HEADER_TIMEOUT_SECONDS="1",
    )
    with Serve(env, port, tmp_path) as server, socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
        started = time.monotonic()
        assert idle.recv(1) == b""  # closed by the worker that accepted it
        waited = time.monotonic() - started
        assert httpx.get(f"{server.url}/health/live", timeout=5).status_code == 200
        code = server.stop()

    assert 0.5 < waited < 10
    assert code == 0, server.stderr


# --- 2. start-up failures: one clear line, no traceback --------------------------------------------------------


def test_serve_port_in_use_is_one_error_line(tenants: list[TenantSpec], database_url: str, workspace: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = cli_env(
            DATABASE_URL=database_url,
            PORT=str(port),
            TENANTS_DIR=str(workspace / "tenants"),
            DATA_DIR=str(workspace / "data"),
        )
        result = run_cli("serve", env=env, timeout=30)
    assert_single_error(result, rf"^error: cannot listen on 127\.0\.0\.1:{port}\b.*\S")


def test_serve_unreachable_database_is_one_error_line(tmp_path: Path) -> None:
    env = cli_env(
        DATABASE_URL=UNREACHABLE_DATABASE,
        PORT=str(free_port()),
        TENANTS_DIR=str(SHIPPED_TENANTS),
        DATA_DIR=str(tmp_path / "data"),
    )
    result = run_cli("serve", env=env, timeout=30)
    assert_single_error(result, r"^error: cannot connect to the database\b")


def test_serve_invalid_tenant_file_names_file_and_field(database_url: str, tmp_path: Path) -> None:
    tenants_dir = tmp_path / "tenants"
    tenants_dir.mkdir()
    without_id = re.sub(r"(?m)^id = .*\n", "", (SHIPPED_TENANTS / "acme.toml").read_text())
    assert without_id != (SHIPPED_TENANTS / "acme.toml").read_text()
    (tenants_dir / "broken.toml").write_text(without_id)
    env = cli_env(
        DATABASE_URL=database_url,
        PORT=str(free_port()),
        TENANTS_DIR=str(tenants_dir),
        DATA_DIR=str(tmp_path / "data"),
    )
    result = run_cli("serve", env=env, timeout=30)
    line = assert_single_error(result, r"^error: broken\.toml: ")
    assert re.search(r"\bid\b", line.removeprefix("error: broken.toml: ")), line


@pytest.mark.parametrize("command", [["serve"], ["tenants", "sync"], ["token", "--tenant", "acme"]])
def test_malformed_port_is_one_error_line_naming_it(command: list[str], tmp_path: Path) -> None:
    env = cli_env(
        DATABASE_URL=UNREACHABLE_DATABASE,
        PORT="abc",
        TENANTS_DIR=str(SHIPPED_TENANTS),
        DATA_DIR=str(tmp_path / "data"),
    )
    result = run_cli(*command, env=env, timeout=30)
    assert_single_error(result, r"^error: .*\bPORT\b")
    assert not (tmp_path / "data").exists()  # refused before touching anything


# --- 3. token ----------------------------------------------------------------------------------------------------


def test_token_defaults(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    before = int(time.time())
    result = run_cli("token", "--tenant", "acme", env=cli_env(DATA_DIR=str(data_dir), DATABASE_URL=None))
    after = int(time.time())

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    header, claims = only_token(result.stdout)
    # Signed with the development key generated into DATA_DIR, not the project's .data.
    pem = (data_dir / "keys" / "acme" / f"{ACME_REALM['name']}.pem").read_text()
    assert header == {"alg": "RS256", "kid": public_jwk(pem)["kid"], "typ": "JWT"}
    assert claims["iss"] == ACME_REALM["issuer"] == "http://localhost:8080/realms/acme-dev"
    assert claims["aud"] == ACME_REALM["audience"] == "ticketing-api"
    assert claims["realm_access"] == {"roles": ["ticket-agent"]}
    assert claims["scope"] == "tickets:read tickets:write"
    assert claims["tenant_id"] == ACME["id"] == "6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    assert claims["sub"] == "dev-agent"
    assert "client_id" not in claims
    assert before <= claims["iat"] <= after
    assert claims["exp"] - claims["iat"] == 3600


def test_token_options_are_honoured(tmp_path: Path) -> None:
    result = run_cli(
        "token",
        "--tenant",
        "acme",
        "--roles",
        "a b",
        "--scope",
        "x",
        "--sub",
        "sa-tenant-1",
        "--ttl",
        "60",
        env=cli_env(DATA_DIR=str(tmp_path / "data")),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    _, claims = only_token(result.stdout)
    assert claims["realm_access"] == {"roles": ["a", "b"]}
    assert claims["scope"] == "x"
    assert claims["sub"] == "sa-tenant-1"
    assert claims["client_id"] == "sa-tenant-1"
    assert claims["exp"] - claims["iat"] == 60
    assert claims["tenant_id"] == ACME["id"]


def test_token_unknown_tenant_is_one_error_line(tmp_path: Path) -> None:
    result = run_cli("token", "--tenant", "nope", env=cli_env(DATA_DIR=str(tmp_path / "data")))
    assert_single_error(result, r"^error: .*\bnope\b")


@pytest.mark.parametrize("ttl", ["0", "-5"])
def test_token_non_positive_ttl_is_one_error_line(tmp_path: Path, ttl: str) -> None:
    result = run_cli("token", "--tenant", "acme", "--ttl", ttl, env=cli_env(DATA_DIR=str(tmp_path / "data")))
    assert_single_error(result, r"^error: --ttl must be a positive number of seconds$")


def test_make_token_prints_only_the_token(tmp_path: Path) -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    # Make imports the environment as variables: drop those the token target reads, and any parent make's state.
    env = cli_env(DATA_DIR=str(tmp_path / "data"))
    for name in ("ROLES", "SCOPE", "SUB", "TTL", "TENANT", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(name, None)
    result = subprocess.run(
        [make, "-s", "token", "TENANT=acme"], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr
    _, claims = only_token(result.stdout)
    assert claims["tenant_id"] == ACME["id"]
    assert claims["realm_access"] == {"roles": ["ticket-agent"]}
    assert (tmp_path / "data" / "keys" / "acme" / f"{ACME_REALM['name']}.pem").exists()


# --- 4. the embedded cluster, without DATABASE_URL ---------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded_data_dir(workspace: Path) -> Iterator[Path]:
    data_dir = new_dir(workspace, "cli-embedded")
    yield data_dir
    stop_cluster_if_running(data_dir / "postgres" / "pgdata")


def embedded_env(data_dir: Path, **variables: str | None) -> dict[str, str]:
    return cli_env(DATABASE_URL=None, DATA_DIR=str(data_dir), TENANTS_DIR=str(SHIPPED_TENANTS), **variables)


@pytest.fixture(scope="module")
def first_sync(embedded_data_dir: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("tenants", "sync", env=embedded_env(embedded_data_dir))


def test_tenants_sync_creates_the_embedded_cluster_and_stops_it(
    embedded_data_dir: Path, first_sync: subprocess.CompletedProcess[str]
) -> None:
    assert first_sync.returncode == 0, first_sync.stderr
    lines = first_sync.stdout.splitlines()
    assert lines[:1] == ["tenants changed: acme, globex"], first_sync.stdout
    # A first sync may also report the template ticket types it seeded for the new tenants; nothing else.
    assert all(re.match(r"ticket types seeded: \S", line) for line in lines[1:]), first_sync.stdout
    assert "Traceback" not in first_sync.stderr
    pgdata = embedded_data_dir / "postgres" / "pgdata"
    assert (pgdata / "PG_VERSION").is_file()
    assert not (pgdata / "postmaster.pid").exists()
    assert pg_ctl_status(pgdata) == 3  # not running (4 would mean no data directory)


def test_tenants_sync_again_reuses_the_cluster(
    embedded_data_dir: Path, first_sync: subprocess.CompletedProcess[str]
) -> None:
    assert first_sync.returncode == 0, first_sync.stderr
    pgdata = embedded_data_dir / "postgres" / "pgdata"
    version = (pgdata / "PG_VERSION").stat()

    again = run_cli("tenants", "sync", env=embedded_env(embedded_data_dir))

    assert again.returncode == 0, again.stderr
    assert again.stdout == "tenants unchanged\n"
    assert "Traceback" not in again.stderr
    after = (pgdata / "PG_VERSION").stat()
    assert (after.st_ino, after.st_mtime_ns) == (version.st_ino, version.st_mtime_ns)  # not initialised again
    assert not (pgdata / "postmaster.pid").exists()
    assert pg_ctl_status(pgdata) == 3


def test_serve_on_the_embedded_cluster_stops_it_on_sigint(
    embedded_data_dir: Path, first_sync: subprocess.CompletedProcess[str], tmp_path: Path
) -> None:
    assert first_sync.returncode == 0, first_sync.stderr
    pgdata = embedded_data_dir / "postgres" / "pgdata"
    port = free_port()
    with Serve(embedded_env(embedded_data_dir, PORT=str(port)), port, tmp_path) as server:
        ready = httpx.get(f"{server.url}/health/ready", timeout=5)
        assert (ready.status_code, ready.json()) == (200, {"status": "ok", "database": "ok"})
        assert pg_ctl_status(pgdata) == 0  # serve started the cluster
        assert PrivateRedis(embedded_data_dir / "redis").is_running()  # and the private Redis server

        code = server.stop()

    assert code == 0, server.stderr
    records = json_log(server.stderr)
    assert [(r["database"], r["redis"]) for r in records if r["msg"] == "serving"] == [
        ("embedded cluster", "private server")
    ]
    assert not (pgdata / "postmaster.pid").exists()
    assert pg_ctl_status(pgdata) == 3
    assert not PrivateRedis(embedded_data_dir / "redis").is_running()


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])


def process_running(pid: int) -> bool:
    """The process exists and is not a zombie (an exited postmaster nobody has reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(FileNotFoundError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_after_a_kill_9_adopts_the_orphaned_cluster_and_stops_it_on_sigterm(
    embedded_data_dir: Path, first_sync: subprocess.CompletedProcess[str], tmp_path: Path, workers: str
) -> None:
    assert first_sync.returncode == 0, first_sync.stderr
    pgdata = embedded_data_dir / "postgres" / "pgdata"
    port = free_port()
    env = embedded_env(embedded_data_dir, PORT=str(port), WORKERS=workers)
    killed_logs = tmp_path / "killed"
    killed_logs.mkdir()
    with Serve(env, port, killed_logs) as killed:
        assert pg_ctl_status(pgdata) == 0
        postmaster = postmaster_pid(pgdata)
        redis = PrivateRedis(embedded_data_dir / "redis")
        redis_pid = int(redis.pid_file.read_text())
        worker_processes = children(killed.process.pid)
        assert len(worker_processes) >= int(workers) - 1
        killed.process.kill()
        assert killed.process.wait(STOP_TIMEOUT) == -signal.SIGKILL
    # Its worker processes end with it (they would hold the port and the database)...
    deadline = time.monotonic() + STOP_TIMEOUT
    while any(process_running(pid) for pid in worker_processes):
        assert time.monotonic() < deadline, [pid for pid in worker_processes if process_running(pid)]
        time.sleep(0.1)
    # ... but the cluster is an orphan: its server is gone, the postmaster is not.
    assert pg_ctl_status(pgdata) == 0
    assert process_running(postmaster)
    assert redis.is_running() and process_running(redis_pid)

    with Serve(env, port, tmp_path) as adopting:
        ready = httpx.get(f"{adopting.url}/health/ready", timeout=5)
        assert (ready.status_code, ready.json()) == (200, {"status": "ok", "database": "ok"})
        assert postmaster_pid(pgdata) == postmaster  # adopted, not restarted
        assert int(redis.pid_file.read_text()) == redis_pid
        adopting.process.send_signal(signal.SIGTERM)
        code = adopting.process.wait(STOP_TIMEOUT)

    assert code == 0, adopting.stderr
    records = json_log(adopting.stderr)
    assert "adopting the running embedded cluster: the process that used it is gone" in [r["msg"] for r in records]
    assert "adopting the running private Redis server: the process that used it is gone" in [r["msg"] for r in records]
    assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL")], records
    assert pg_ctl_status(pgdata) == 3
    assert not process_running(postmaster)
    assert not process_running(redis_pid)


def test_a_command_run_while_serve_uses_the_cluster_leaves_it_running(
    embedded_data_dir: Path, first_sync: subprocess.CompletedProcess[str], tmp_path: Path
) -> None:
    assert first_sync.returncode == 0, first_sync.stderr
    pgdata = embedded_data_dir / "postgres" / "pgdata"
    port = free_port()
    with Serve(embedded_env(embedded_data_dir, PORT=str(port)), port, tmp_path) as server:
        postmaster = postmaster_pid(pgdata)

        sync = run_cli("tenants", "sync", env=embedded_env(embedded_data_dir))

        assert sync.returncode == 0, sync.stderr
        assert sync.stdout == "tenants unchanged\n"
        left_running = [r for r in json_log(sync.stderr) if r["msg"].startswith("embedded cluster left running")]
        assert [r["pids"] for r in left_running] == [[server.process.pid]]
        assert postmaster_pid(pgdata) == postmaster
        ready = httpx.get(f"{server.url}/health/ready", timeout=5)
        assert (ready.status_code, ready.json()) == (200, {"status": "ok", "database": "ok"})

        code = server.stop()

    assert code == 0, server.stderr
    assert pg_ctl_status(pgdata) == 3
    assert not process_running(postmaster)
